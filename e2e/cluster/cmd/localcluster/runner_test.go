package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestImageTag(t *testing.T) {
	for ref, want := range map[string]string{
		"mesh-operator:dev": "mesh-operator:dev",
		"docker.io/openservicemesh/osm-controller:v1.2.4": "openservicemesh/osm-controller:v1.2.4",
		"docker.io/library/busybox":                       "busybox:latest",
		"library/busybox:1":                               "busybox:1",
		"index.docker.io/openservicemesh/init:v1.2.4":     "openservicemesh/init:v1.2.4",
		"myacr.azurecr.io/bookstore:v1":                   "myacr.azurecr.io/bookstore:v1",
		"localhost:5000/x":                                "localhost:5000/x:latest",
		"x@sha256:abcd":                                   "x@sha256:abcd",
	} {
		if got := imageTag(ref); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestKwokStagesOnlySelectSimulatedPodsWhenTheRunnerIsOn(t *testing.T) {
	on := string(kwokStagesFor(true))
	if n := strings.Count(on, annRuntime); n != 3 {
		t.Fatalf("want the runtime selector on the 3 pod stages, got %d", n)
	}
	if strings.Contains(string(kwokStagesFor(false)), annRuntime) {
		t.Fatal("with the runner off, kwok must act on every pod")
	}
}

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"$(A)-$(B)":   "1-two",
		"$(MISSING)":  "$(MISSING)",
		"$$(A)":       "$(A)",
		"cost $5":     "cost $5",
		"unclosed $(": "unclosed $(",
	} {
		if got := expandVars(in, vars); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommandLineFollowsKubernetesRules(t *testing.T) {
	entry, cmd, env := []string{"/bin/app"}, []string{"--default"}, []string{"X=1"}
	cases := []struct {
		spec corev1.Container
		want []string
	}{
		{corev1.Container{}, []string{"/bin/app", "--default"}},
		{corev1.Container{Args: []string{"--x=$(X)"}}, []string{"/bin/app", "--x=1"}},
		{corev1.Container{Command: []string{"/bin/other"}}, []string{"/bin/other"}},
		{corev1.Container{Command: []string{"sh"}, Args: []string{"-c", "$(X)"}}, []string{"sh", "-c", "1"}},
	}
	for _, c := range cases {
		if got := commandLine(&c.spec, entry, cmd, env); !reflect.DeepEqual(got, c.want) {
			t.Errorf("commandLine(%+v) = %v, want %v", c.spec, got, c.want)
		}
	}
}

func TestCapabilities(t *testing.T) {
	if got := capabilitySet(&corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, false); len(got) != 0 {
		t.Errorf("drop ALL left %v", got)
	}
	got := capabilitySet(&corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}, false)
	if !reflect.DeepEqual(got, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("drop ALL add NET_BIND_SERVICE = %v", got)
	}
	got = capabilitySet(&corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}}, false)
	if slices.Contains(got, "CAP_NET_RAW") || !slices.Contains(got, "CAP_CHOWN") || slices.Contains(got, "CAP_SYS_ADMIN") {
		t.Errorf("default minus NET_RAW = %v", got)
	}
}

func TestImageUser(t *testing.T) {
	for spec, want := range map[string][2]int64{"": {0, 0}, "65532": {65532, 65532}, "65532:1000": {65532, 1000}} {
		uid, gid, err := imageUser(spec, t.TempDir())
		if err != nil || uid != want[0] || gid != want[1] {
			t.Errorf("imageUser(%q) = %d, %d, %v", spec, uid, gid, err)
		}
	}
	if _, _, err := imageUser("nobody-here", t.TempDir()); err == nil {
		t.Error("an unknown user name must be an error")
	}
}
