package main

// Istio's own CustomResourceDefinitions, from the istio.io/api Go module
// (kubernetes/customresourcedefinitions.gen.yaml: AuthorizationPolicy,
// PeerAuthentication, VirtualService, … with their OpenAPI schemas and CEL
// rules), installed next to the Gateway API CRDs. The AKS Istio add-on brings
// the same CRDs; tests of the operator's Istio output need the real schema,
// not a stand-in of ours. Added by aksready (issue 15); flags are registered
// here so main.go only needs the call in run().

import (
	"flag"
	"fmt"
	"path/filepath"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

const istioAPIModule = "istio.io/api"

var (
	istioAPIVersion = flag.String("istio-api-version", "v1.32.0", "istio.io/api module version whose kubernetes/*.yaml CRDs are installed")
	istioCRDDir     = flag.String("istio-crds", "", "directory of Istio CRD YAML (default: kubernetes/ of istio.io/api@<--istio-api-version> in the Go module cache)")
	noIstio         = flag.Bool("no-istio", false, "do not install Istio's CRDs")
)

// loadIstioCRDs returns Istio's CRDs, or none with --no-istio.
func loadIstioCRDs() ([]*apiextv1.CustomResourceDefinition, error) {
	if *noIstio {
		return nil, nil
	}
	dir := *istioCRDDir
	if dir == "" {
		moduleDir, err := resolveModuleDir(istioAPIModule, *istioAPIVersion)
		if err != nil {
			return nil, fmt.Errorf("%w; pass --istio-crds DIR or --no-istio", err)
		}
		dir = filepath.Join(moduleDir, "kubernetes")
	}
	return loadCRDs(dir)
}
