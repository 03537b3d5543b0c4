package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

const (
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	kwokNodeValue      = "fake"
	gatewayAPIModule   = "sigs.k8s.io/gateway-api"
)

// parseLabels parses "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid label %q (want key=value)", kv)
		}
		out[k] = v
	}
	return out, nil
}

func nodeName(i int) string { return fmt.Sprintf("kwok-node-%d", i) }

// createNodes registers n fake nodes for kwok to manage. Status (capacity,
// addresses, nodeInfo) may be set on create for Nodes; kwok's node-initialize
// stage keeps these values and adds the Ready conditions.
// Every node's kubelet API is localcluster's own kubelet endpoint on loopback:
// the node says so with an InternalDNS address "localhost" (the only address
// type the API server is told to use) and the endpoint's port, so the API server
// never resolves a node name (no DNS query ever leaves the machine).
func createNodes(ctx context.Context, cs kubernetes.Interface, n int, extra map[string]string, k8sVersion string, kubeletPort int) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	for i := 0; i < n; i++ {
		name := nodeName(i)
		labels := map[string]string{
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
			"kubernetes.io/hostname": name,
			"type":                   "kwok",
		}
		for k, v := range extra {
			labels[k] = v
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      labels,
				Annotations: map[string]string{kwokNodeAnnotation: kwokNodeValue, "node.alpha.kubernetes.io/ttl": "0"},
			},
			Spec: corev1.NodeSpec{
				PodCIDR:  fmt.Sprintf("10.244.%d.0/24", i),
				PodCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i)},
			},
			Status: corev1.NodeStatus{
				Capacity:    res.DeepCopy(),
				Allocatable: res.DeepCopy(),
				Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.240.%d.%d", i/250, i%250+1)},
					{Type: corev1.NodeHostName, Address: name},
					{Type: corev1.NodeInternalDNS, Address: "localhost"},
				},
				DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(kubeletPort)}},
				NodeInfo: corev1.NodeSystemInfo{
					Architecture:            "amd64",
					OperatingSystem:         "linux",
					KubeletVersion:          k8sVersion,
					KubeProxyVersion:        k8sVersion,
					ContainerRuntimeVersion: "kwok://" + kwokVersionLabel,
					OSImage:                 "kwok fake node",
				},
			},
		}
		_, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

func nodesReady(ctx context.Context, cs kubernetes.Interface, n int) (bool, error) {
	for i := 0; i < n; i++ {
		node, err := cs.CoreV1().Nodes().Get(ctx, nodeName(i), metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false, nil
		}
	}
	return true, nil
}

// resolveGatewayCRDDir finds config/crd/standard of the gateway-api Go module
// in the module cache, downloading it with `go mod download` if needed.
func resolveGatewayCRDDir(version string) (string, error) {
	dir, err := resolveModuleDir(gatewayAPIModule, version)
	if err != nil {
		return "", fmt.Errorf("%w; pass --gateway-api-crds DIR or --no-gateway-api", err)
	}
	return filepath.Join(dir, "config", "crd", "standard"), nil
}

// resolveModuleDir finds module@version in the Go module cache, downloading it
// with `go mod download` if needed.
func resolveModuleDir(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = os.TempDir() // outside any module
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		var info struct{ Dir, Error string }
		if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error == "" && info.Dir != "" {
			return info.Dir, nil
		} else if info.Error != "" {
			err = errors.New(info.Error)
		} else {
			err = fmt.Errorf("unexpected output: %s", out)
		}
	}
	// Fall back to guessing the module cache location (e.g. no `go` on PATH).
	var caches []string
	if c := os.Getenv("GOMODCACHE"); c != "" {
		caches = append(caches, c)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		caches = append(caches, filepath.Join(strings.Split(gp, string(os.PathListSeparator))[0], "pkg", "mod"))
	}
	if home, herr := os.UserHomeDir(); herr == nil {
		caches = append(caches, filepath.Join(home, "go", "pkg", "mod"))
	}
	for _, c := range caches {
		dir := filepath.Join(c, module+"@"+version)
		if st, serr := os.Stat(dir); serr == nil && st.IsDir() {
			return dir, nil
		}
	}
	return "", fmt.Errorf("cannot find %s@%s (go mod download: %v %s)",
		module, version, err, strings.TrimSpace(stderr.String()))
}

// loadCRDs reads every YAML document in dir/*.yaml and keeps only
// CustomResourceDefinitions (the standard folder also holds a
// ValidatingAdmissionPolicy).
func loadCRDs(dir string) ([]*apiextv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	more, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	files = append(files, more...)
	sort.Strings(files)
	var crds []*apiextv1.CustomResourceDefinition
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(fh))
		for {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if tm.Kind != "CustomResourceDefinition" {
				continue
			}
			crd := &apiextv1.CustomResourceDefinition{}
			if err := yaml.Unmarshal(doc, crd); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			crds = append(crds, crd)
		}
		fh.Close()
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition found in %s", dir)
	}
	return crds, nil
}

// applyCRD creates the CRD, or updates it when it already exists (a kept
// --data-dir).
func applyCRD(ctx context.Context, ext apiextclient.Interface, crd *apiextv1.CustomResourceDefinition) error {
	_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		old, gerr := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		crd = crd.DeepCopy()
		crd.ResourceVersion = old.ResourceVersion
		_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, crd, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("apply CRD %s: %w", crd.Name, err)
	}
	return nil
}

func crdsEstablished(ctx context.Context, ext apiextclient.Interface, names []string) (bool, error) {
	for _, n := range names {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		ok := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// poll calls cond every interval until it returns true, an error, or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) error {
	return wait.PollUntilContextCancel(ctx, interval, true, cond)
}
