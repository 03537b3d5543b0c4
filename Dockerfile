# syntax=docker/dockerfile:1
#
# The mesh-operator release image: one static binary on distroless/static, run as UID 65532, with no
# shell or package manager at run time. Build from the repository root:
#
#   docker build -t ghcr.io/meshoperator/mesh-operator:v0.1.0 .
#
# (see "Install" in README.md for pushing it, or loading it into kind). `make image` builds the same
# binary the same way and an image with the same metadata without a Docker daemon
# (operator/image/build.sh); e2e/tests/operator_image.rs checks the two agree.

# Build stage: Rust on Debian. glibc linked in statically (crt-static) gives a static-pie binary
# that needs no loader and no libc at run time; the profile `image` is release, symbols stripped.
FROM docker.io/library/rust:1.92-bookworm AS build
# cmake for aws-lc-sys (rustls' crypto provider), should its build ask for it; readelf is in binutils.
RUN apt-get update && apt-get install -y --no-install-recommends cmake binutils && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --profile image --target "$target" -p mesh-operator --bin mesh-operator \
 && cp "target/$target/image/mesh-operator" /mesh-operator
# A dynamically linked binary would not start on distroless/static: fail the build instead.
RUN if readelf -l /mesh-operator | grep -q "program interpreter" || readelf -d /mesh-operator | grep -q "(NEEDED)"; \
    then echo "mesh-operator is not static" >&2; exit 1; fi

# Run stage: CA certificates (SSL_CERT_FILE), /etc/passwd with the nonroot user, nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="mesh-operator" \
      org.opencontainers.image.description="Kubernetes operator that installs a service mesh from one MeshInstallation object" \
      org.opencontainers.image.source="https://github.com/meshoperator/mesh-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /mesh-operator /usr/local/bin/mesh-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mesh-operator"]
CMD ["run", "--leader-elect"]
