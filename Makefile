# The two commands of the README, and their parts.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/mesh-operator/target
BIN_DIR ?= $(HOME)/.cache/mesh-operator/bin
# The static release build of the image lands in $(IMAGE_TARGET_DIR)/<arch>-unknown-linux-gnu/image/.
IMAGE_TARGET_DIR ?= $(CARGO_TARGET_DIR)

.PHONY: demo test cluster osm-images oracle soak image crds unit e2e bench e2e-kubeconfig

## demo: run the bookstore demo on the local control plane (apply, converge, edit the split, tear down).
demo: cluster
	cargo run --locked -p mesh-e2e --bin demo

## test: every test — unit, then end-to-end on the local control plane (E2E_PROVIDER=kind|kubeconfig for others).
test: cluster oracle image
	cd e2e/cluster && go test ./cmd/...
	cargo test --workspace --locked --no-fail-fast -- --test-threads=4
	bash e2e/kubeconfig.sh $(BIN_DIR)

## e2e-kubeconfig: the cluster suites with E2E_PROVIDER=kubeconfig against a second local control
## plane started as a plain cluster (no nodes: nothing simulated; admission webhooks on); prints
## which tests were skipped and why. `E2E_KUBECONFIG=path make e2e-kubeconfig` uses that cluster.
e2e-kubeconfig: cluster
	bash e2e/kubeconfig.sh $(BIN_DIR)

## cluster: build the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok, the
## real-pod runner; as root, apt-installs runc, umoci, busybox-static and curl when missing) and OSM
## v1.2.4's control plane into the default image store (`osm-images`): from then on, on the local control
## plane, osm-bootstrap, osm-controller and osm-injector run for real and the injector injects the apps,
## in the README's manual steps and in every suite that does not ask for simulated OSM (Need::SimulatedOsm).
cluster:
	bash e2e/cluster/build.sh $(BIN_DIR)
	bash e2e/osm/build.sh --with-curl $(BIN_DIR)

## oracle: build OSM v1.2.4's policy code as the translator's judge (e2e/osm-oracle), and unit-test it.
oracle:
	bash e2e/osm-oracle/build.sh $(BIN_DIR) --test

## osm-images: build OSM v1.2.4's control-plane binaries from its Go module (and the chart's curl init
## image) into the local image store ($MESH_IMAGE_STORE, default ~/.cache/mesh-operator/images), so
## osm-bootstrap, osm-controller and osm-injector run for real and inject the apps (part of `cluster`).
osm-images:
	bash e2e/osm/build.sh --with-curl $(BIN_DIR)

## soak: the translation against OSM's own code on many more inputs (OSM_ORACLE_CASES, default 20000; OSM_ORACLE_SEED replays).
soak: oracle
	OSM_ORACLE_CASES=$${OSM_ORACLE_CASES:-20000} MESH_E2E_BIN_DIR=$(BIN_DIR) cargo test --locked --release -p mesh-provisioner --test translate_vs_osm -- --nocapture

## image: build the operator image without a Docker daemon (the Dockerfile's static binary and
## metadata) and tag it mesh-operator:dev in the local image store ($$MESH_IMAGE_STORE, default
## ~/.cache/mesh-operator/images), where the local control plane runs it. Installs umoci with apt-get if missing.
image:
	CARGO_TARGET_DIR=$(IMAGE_TARGET_DIR) bash operator/image/build.sh

## crds: regenerate crds/yaml from the code.
crds:
	UPDATE_CRDS=1 cargo test -p mesh-crds --test crds committed_crd_yaml_matches_the_code

## bench: the benchmark suite on the local control plane (convergence, steady state, footprint, scale);
## the figures are in README.md "Performance". `BENCH="steady scale"` runs some sections only.
bench: cluster
	cargo build --locked --release -p mesh-operator --bin mesh-operator
	cargo run --locked --release -p mesh-e2e --bin bench -- $(BENCH)
