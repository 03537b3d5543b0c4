# syntax=docker/dockerfile:1
#
# The mesh-operator image: one static (musl) binary on distroless/static, run as UID 65532, with no
# shell or package manager at run time. Build from the repository root:
#
#   docker build -t ghcr.io/meshoperator/mesh-operator:v0.1.0 .
#
# (see "Install" in README.md for pushing it, or loading it into kind).

# Build stage: Rust on Alpine targets musl, whose binaries are static (crt-static is the default).
FROM docker.io/library/rust:1.92-alpine AS build
# C toolchain pieces for the crates that compile C (ring; aws-lc-sys via rcgen), and readelf for the check below.
RUN apk add --no-cache musl-dev cmake make perl binutils
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mesh-operator --bin mesh-operator \
 && cp target/release/mesh-operator /mesh-operator
# A dynamically linked binary would not start on distroless/static: fail the build instead.
RUN if readelf -l /mesh-operator | grep -q "program interpreter"; then echo "mesh-operator is not static" >&2; exit 1; fi

# Run stage: CA certificates, /etc/passwd with the nonroot user, nothing else.
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
