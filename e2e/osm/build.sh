#!/usr/bin/env bash
# Build OSM's control-plane binaries from the Go module github.com/openservicemesh/osm (the version
# pinned in ./go.mod) and pack each as a one-layer image into the local image store, under the
# names the operator's builders give the pods:
#   openservicemesh/osm-controller:<v>  /osm-controller
#   openservicemesh/osm-injector:<v>    /osm-injector
#   openservicemesh/osm-bootstrap:<v>   /osm-bootstrap + /osm-crds/*.yaml (the CRDs it applies at start)
#   curlimages/curl:latest              with --with-curl only: Debian's curl (the init containers of osm-controller
#                                       and osm-injector wait for osm-bootstrap with it, by its Service name)
#
# usage: e2e/osm/build.sh [--with-curl] BINDIR [STORE]
#   BINDIR  where the binaries go (BINDIR/osm/...)
#   STORE   the image store (default $MESH_IMAGE_STORE or ~/.cache/mesh-operator/images)
# Idempotent: Go's build cache makes a re-run take seconds, and packing the same files yields the
# same digests, so the store is left untouched. Needs only `go` and the Go module proxy.
set -euo pipefail

# Without DNS for Service names inside real pods, the init containers of osm-controller and
# osm-injector can never reach osm-bootstrap: those two pods then stay simulated (their init image
# is not in the store) rather than stuck in Init. Pass --with-curl where pods resolve Services.
with_curl=false
if [[ ${1:-} == --with-curl ]]; then
	with_curl=true
	shift
fi
if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: $0 BINDIR [STORE]" >&2
	exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1/osm"
out="$(cd "$1/osm" && pwd)"
store="${2:-${MESH_IMAGE_STORE:-$HOME/.cache/mesh-operator/images}}"
mkdir -p "$store"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
t_all="$(now)"

cd "$here"
module=github.com/openservicemesh/osm
version="$(go list -m -f '{{.Version}}' "$module")"
# The release's own stamps: upstream's Makefile sets these three with -X. The build date is the
# tag's (from the module proxy), so rebuilding yields the same binary.
build_date="$(go list -m -f '{{.Time.UTC.Format "2006-01-02-15:04"}}' "$module")"
declare -A commits=([v1.2.4]=82651008921837b2f21113e4604a807c3f68a97c)
ldflags="-s -w -X $module/pkg/version.Version=$version -X $module/pkg/version.BuildDate=$build_date"
ldflags+=" -X $module/pkg/version.GitCommit=${commits[$version]:-}"

t="$(now)"
echo "build.sh: building osm-controller, osm-injector, osm-bootstrap ($module $version)..." >&2
for cmd in osm-controller osm-injector osm-bootstrap; do
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$cmd" "$module/cmd/$cmd"
done
CGO_ENABLED=0 go build -trimpath -o "$out/ocipack" ./ocipack
echo "build.sh: OSM binaries built in $(since "$t") -> $out" >&2

t="$(now)"
crds="$(go list -m -f '{{.Dir}}' "$module")/cmd/osm-bootstrap/crds"
pack() { "$out/ocipack" --store "$store" "$@"; }
pack --tag "openservicemesh/osm-controller:$version" --entrypoint /osm-controller "$out/osm-controller=/osm-controller"
pack --tag "openservicemesh/osm-injector:$version" --entrypoint /osm-injector "$out/osm-injector=/osm-injector"
pack --tag "openservicemesh/osm-bootstrap:$version" --entrypoint /osm-bootstrap \
	"$out/osm-bootstrap=/osm-bootstrap" "$crds/=/osm-crds/"

# curl is not a Go program: pack the host's curl with the shared objects it loads (and the loader),
# at their own paths. Upstream's image runs `curl` from PATH, as the chart's command does.
if $with_curl && ! command -v curl >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "build.sh: installing curl with apt-get..." >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl >&2; }
fi
if ! $with_curl; then
	echo "build.sh: no curlimages/curl (--with-curl not given): osm-controller and osm-injector stay simulated" >&2
elif curl="$(command -v curl)"; then
	# glibc without nsswitch.conf asks DNS before /etc/hosts; pods name Services in /etc/hosts.
	printf 'hosts: files dns\n' >"$out/nsswitch.conf"
	files=("$curl=/usr/bin/curl" "$out/nsswitch.conf=/etc/nsswitch.conf")
	while read -r lib; do
		files+=("$lib=$lib")
	done < <(ldd "$curl" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p' | sort -u)
	pack --tag "curlimages/curl:latest" --entrypoint /usr/bin/curl "${files[@]}"
else
	echo "build.sh: no curl on this machine: osm-controller and osm-injector stay simulated (their init container is curlimages/curl)" >&2
fi
echo "build.sh: images packed in $(since "$t") -> $store" >&2
echo "build.sh: done in $(since "$t_all")" >&2
