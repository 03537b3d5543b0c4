package main

import (
	"runtime/debug"
	"strings"
	_ "unsafe" // go:linkname

	"k8s.io/component-base/version"
)

// Kubernetes stamps its version with -ldflags -X at release time. A plain
// `go build` of this module leaves the placeholder "v0.0.0-master+$Format:%H$",
// which kubectl (and other clients) cannot parse. Set it from the version of
// the k8s.io/kubernetes module this binary was built with, before any
// component reads it. Values set with -ldflags are kept.

//go:linkname cbGitVersion k8s.io/component-base/version.gitVersion
var cbGitVersion string

//go:linkname cbGitMajor k8s.io/component-base/version.gitMajor
var cbGitMajor string

//go:linkname cbGitMinor k8s.io/component-base/version.gitMinor
var cbGitMinor string

//go:linkname cbGitTreeState k8s.io/component-base/version.gitTreeState
var cbGitTreeState string

//go:linkname cgGitVersion k8s.io/client-go/pkg/version.gitVersion
var cgGitVersion string

//go:linkname cgGitMajor k8s.io/client-go/pkg/version.gitMajor
var cgGitMajor string

//go:linkname cgGitMinor k8s.io/client-go/pkg/version.gitMinor
var cgGitMinor string

// kubernetesModuleVersion is the version of k8s.io/kubernetes in the build
// (e.g. "v1.34.12"), or "" if unknown.
func kubernetesModuleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "k8s.io/kubernetes" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

func init() {
	v := kubernetesModuleVersion()
	if !strings.HasPrefix(v, "v1.") {
		return
	}
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return
	}
	if strings.HasPrefix(cbGitVersion, "v0.0.0") {
		cbGitVersion, cbGitMajor, cbGitMinor = v, parts[0], parts[1]
		if cbGitTreeState == "" {
			cbGitTreeState = "clean"
		}
		// Get() serves GitVersion from an atomic copy taken at init.
		_ = version.SetDynamicVersion(v)
	}
	if strings.HasPrefix(cgGitVersion, "v0.0.0") {
		cgGitVersion, cgGitMajor, cgGitMinor = v, parts[0], parts[1]
	}
}
