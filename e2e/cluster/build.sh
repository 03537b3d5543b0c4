#!/usr/bin/env bash
# Build the e2e test cluster binaries into OUTDIR:
#   OUTDIR/localcluster  (etcd + kube-apiserver + kube-controller-manager + kube-scheduler, module ./)
#   OUTDIR/kwok          (sigs.k8s.io/kwok/cmd/kwok, module ./kwok)
#   OUTDIR/testwebhook   (a static admission webhook the real-pod tests run in a pod)
# Idempotent: Go's build cache makes a re-run take seconds. Needs only `go`
# and the Go module proxy (or a warm module cache).
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"

# Real pods run under Debian's runc; the real-pod tests build their tiny image from busybox-static.
# CI starts from a fresh machine as root: install what is missing (nothing happens when present).
need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || need+=(busybox-static)
if [[ ${#need[@]} -gt 0 ]]; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "build.sh: installing ${need[*]} with apt-get..." >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
			{ apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
	else
		echo "build.sh: ${need[*]} missing (needed for real pods; the cluster simulates every pod without runc): apt-get install ${need[*]}" >&2
	fi
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
t_all="$(now)"

# Stamp the Kubernetes version (plain `go build` reports v0.0.0-master).
k8s_version="$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=${k8s_version}"
	ldflags+=" -X ${pkg}.gitMajor=${major}"
	ldflags+=" -X ${pkg}.gitMinor=${minor}"
	ldflags+=" -X ${pkg}.gitTreeState=clean"
done

t="$(now)"
echo "build.sh: building localcluster (k8s.io/kubernetes ${k8s_version})..." >&2
(cd "$here" && go build -ldflags "${ldflags}" -o "$out/localcluster" ./cmd/localcluster)
echo "build.sh: localcluster built in $(since "$t") -> $out/localcluster" >&2

# A static validating webhook the real-pod tests run as a pod (stdlib only: seconds).
(cd "$here" && CGO_ENABLED=0 go build -o "$out/testwebhook" ./cmd/testwebhook)

t="$(now)"
kwok_version="$(cd "$here/kwok" && go list -m -f '{{.Version}}' sigs.k8s.io/kwok)"
echo "build.sh: building kwok (sigs.k8s.io/kwok ${kwok_version})..." >&2
(cd "$here/kwok" && go build -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok)
echo "build.sh: kwok built in $(since "$t") -> $out/kwok" >&2

# localcluster reads the Gateway API CRDs from the module cache at start-up;
# fetch them now so that start-up never needs the network.
t="$(now)"
gw_dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS= go mod download -json sigs.k8s.io/gateway-api@v1.5.1 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
echo "build.sh: gateway-api CRDs at ${gw_dir}/config/crd/standard ($(since "$t"))" >&2
t="$(now)"
istio_dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS= go mod download -json istio.io/api@v1.32.0 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
echo "build.sh: Istio CRDs at ${istio_dir}/kubernetes ($(since "$t"))" >&2

echo "build.sh: done in $(since "$t_all")" >&2
