#!/usr/bin/env bash
# Build the OSM oracle (OSM v1.2.4's own policy builders, from the Go module proxy/cache) into
# OUTDIR/osm-oracle. Idempotent: a warm Go build cache makes a re-run take seconds.
# With --test, also run its unit test (the reference note's facts).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 OUTDIR [--test]" >&2
	exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

t="$(now)"
echo "osm-oracle/build.sh: building osm-oracle ($(cd "$here" && go list -m -f '{{.Path}}@{{.Version}}' github.com/openservicemesh/osm))..." >&2
(cd "$here" && go build -o "$out/osm-oracle" .)
echo "osm-oracle/build.sh: built in $(since "$t") -> $out/osm-oracle" >&2

if [[ "${2:-}" == "--test" ]]; then
	t="$(now)"
	(cd "$here" && go vet . && go test -count=1 .)
	echo "osm-oracle/build.sh: unit test passed in $(since "$t")" >&2
fi
