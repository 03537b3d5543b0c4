#!/usr/bin/env bash
# `make image`: builds the mesh-operator image without a Docker daemon and tags it in the local OCI
# image store (an OCI image layout directory), from which the local control plane runs it.
#
#   operator/image/build.sh [STORE [TAG]]     # default ~/.cache/mesh-operator/images, mesh-operator:dev
#
# The image is the Dockerfile's, built another way:
# - the same binary: `cargo build --profile image --target <arch>-unknown-linux-gnu` with
#   RUSTFLAGS='-C target-feature=+crt-static' (a static-pie executable: no loader, no libc needed);
# - the same metadata: entrypoint, cmd, user 65532:65532, exposed port, labels (e2e/tests/
#   operator_image.rs fails when the two differ);
# - instead of gcr.io/distroless/static-debian12:nonroot underneath, the few files of it the
#   operator uses, taken from this Debian machine: the CA bundle (Azure Resource Manager's TLS roots,
#   read through SSL_CERT_FILE), /etc/passwd and /etc/group naming the nonroot user, nsswitch.conf
#   (glibc's resolver, linked in statically, reads it), /tmp and the nonroot home.
# One layer, file and history times set to the last commit's: the same source gives the same layer.
#
# Environment: CARGO_TARGET_DIR (where cargo builds; the static build lands in
# $CARGO_TARGET_DIR/<arch>-unknown-linux-gnu/image/), MESH_IMAGE_STORE (the store, if no STORE).
# Needs umoci and ca-certificates (Debian packages); installs them with apt-get when run as root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
store="${1:-${MESH_IMAGE_STORE:-$HOME/.cache/mesh-operator/images}}"
tag="${2:-mesh-operator:dev}"
arch="$(uname -m)"
triple="$arch-unknown-linux-gnu"
case "$arch" in x86_64) oci_arch=amd64 ;; aarch64) oci_arch=arm64 ;; *) oci_arch="$arch" ;; esac
target_dir="${CARGO_TARGET_DIR:-$root/target}"
binary="$target_dir/$triple/image/mesh-operator"
ca_bundle=/etc/ssl/certs/ca-certificates.crt

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
say() { echo "image: $*" >&2; }
t_all="$(now)"

# Tools: Debian's umoci writes the OCI layout; ca-certificates provides the CA bundle.
missing=()
command -v umoci >/dev/null || missing+=(umoci)
[[ -s "$ca_bundle" ]] || missing+=(ca-certificates)
command -v readelf >/dev/null || missing+=(binutils)
if ((${#missing[@]})); then
	if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
		say "missing ${missing[*]}: install them (Debian/Ubuntu: sudo apt-get install -y ${missing[*]})"
		exit 1
	fi
	say "installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null
		apt-get install -y -qq "${missing[@]}" >/dev/null
	}
fi

# The binary, exactly as the Dockerfile builds it.
t="$(now)"
say "building the static mesh-operator binary (profile image, $triple, crt-static)"
(cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' \
	cargo build --locked --profile image --target "$triple" -p mesh-operator --bin mesh-operator)
say "binary built in $(since "$t"): $binary ($(du -h "$binary" | cut -f1))"
# A dynamically linked binary would not start on an image without libc: fail here instead.
if readelf -l "$binary" | grep -q "program interpreter" || readelf -d "$binary" | grep -q "(NEEDED)"; then
	say "$binary is not static (it names a program interpreter or needed libraries)"
	exit 1
fi

# The root filesystem, as one tar layer with fixed owners, modes and times.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{etc/ssl/certs,usr/local/bin,tmp,home/nonroot}
install -m 0755 "$binary" "$rootfs/usr/local/bin/mesh-operator"
install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
# distroless' users: root, nobody and nonroot (65532), whose home is the working directory.
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
	'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
	'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$rootfs/etc/group"
printf '%s\n' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs"/etc/{passwd,group,nsswitch.conf}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/home/nonroot"
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}"
tar_opts=(--format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime
	--sort=name --mtime="@$epoch" --numeric-owner -C "$rootfs")
layer="$work/layer.tar"
tar -cf "$layer" "${tar_opts[@]}" --owner=0 --group=0 --exclude=./home/nonroot ./etc ./home ./tmp ./usr
tar -rf "$layer" "${tar_opts[@]}" --owner=65532 --group=65532 ./home/nonroot
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"

# Into the store, under its lock (other writers add their images to the same layout): build under a
# temporary tag, then move the tag, so a reader never sees a half-built image.
t="$(now)"
mkdir -p "$store"
exec 9>"$store/.lock"
flock 9
if [[ ! -f "$store/index.json" ]]; then
	# An empty layout (what `umoci init` writes, which refuses a directory that exists: the lock is in it).
	mkdir -p "$store/blobs/sha256"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$store/oci-layout"
	echo '{"schemaVersion":2,"manifests":[]}' >"$store/index.json"
fi
building="mesh-operator-building-$$"
umoci rm --image "$store:$building" 2>/dev/null || true
umoci new --image "$store:$building"
umoci raw add-layer --image "$store:$building" --history.created "$created" \
	--history.created_by "operator/image/build.sh: the root filesystem" "$layer"
# Keep in step with the Dockerfile's final stage (and distroless' Env and WorkingDir).
umoci config --image "$store:$building" --tag "$tag" \
	--history.created "$created" --history.created_by "operator/image/build.sh: the Dockerfile's final stage" \
	--created "$created" --architecture "$oci_arch" --os linux \
	--config.user 65532:65532 \
	--config.workingdir /home/nonroot \
	--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
	--config.exposedports 8080/tcp \
	--config.entrypoint /usr/local/bin/mesh-operator \
	--config.cmd run --config.cmd --leader-elect \
	--config.label org.opencontainers.image.title=mesh-operator \
	--config.label "org.opencontainers.image.description=Kubernetes operator that installs a service mesh from one MeshInstallation object" \
	--config.label org.opencontainers.image.source=https://github.com/meshoperator/mesh-operator \
	--config.label org.opencontainers.image.licenses=Apache-2.0
umoci rm --image "$store:$building"
umoci gc --layout "$store"
flock -u 9
say "tagged $tag in $store in $(since "$t") (layer $(du -h "$layer" | cut -f1) uncompressed)"
say "done in $(since "$t_all")"
