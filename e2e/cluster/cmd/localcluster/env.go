package main

// A real container's environment and the pod's /etc files.

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// orderedEnv keeps the first position of a name and the last value.
type orderedEnv struct {
	names  []string
	values map[string]string
}

func (e *orderedEnv) set(k, v string) {
	if _, ok := e.values[k]; !ok {
		e.names = append(e.names, k)
	}
	e.values[k] = v
}

func (e *orderedEnv) list() []string {
	out := make([]string, 0, len(e.names))
	for _, k := range e.names {
		out = append(out, k+"="+e.values[k])
	}
	return out
}

// containerEnv: the image's env, HOSTNAME, the API server's service variables
// (pointing at the tunnel inside the pod), then envFrom and env.
func (p *realPod) containerEnv(pod *corev1.Pod, spec *corev1.Container, imageEnv []string) ([]string, error) {
	env := &orderedEnv{values: map[string]string{}}
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		env.set(k, v)
	}
	if _, ok := env.values["PATH"]; !ok {
		env.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	env.set("HOSTNAME", pod.Name)
	port := strconv.Itoa(p.r.apiPort)
	env.set("KUBERNETES_SERVICE_HOST", "127.0.0.1")
	env.set("KUBERNETES_SERVICE_PORT", port)
	env.set("KUBERNETES_SERVICE_PORT_HTTPS", port)
	env.set("KUBERNETES_PORT", "tcp://127.0.0.1:"+port)
	env.set("KUBERNETES_PORT_443_TCP", "tcp://127.0.0.1:"+port)
	env.set("KUBERNETES_PORT_443_TCP_PROTO", "tcp")
	env.set("KUBERNETES_PORT_443_TCP_PORT", port)
	env.set("KUBERNETES_PORT_443_TCP_ADDR", "127.0.0.1")

	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	for _, from := range spec.EnvFrom {
		kind, name, optional := "configMap", "", (*bool)(nil)
		if ref := from.ConfigMapRef; ref != nil {
			name, optional = ref.Name, ref.Optional
		} else if ref := from.SecretRef; ref != nil {
			kind, name, optional = "secret", ref.Name, ref.Optional
		}
		data, found, err := p.podData(ctx, kind, name, optional)
		if err != nil {
			return nil, fmt.Errorf("envFrom: %w", err)
		}
		if !found {
			continue
		}
		for k, v := range data {
			env.set(from.Prefix+k, string(v))
		}
	}
	for _, e := range spec.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expandVars(e.Value, env.values))
			continue
		}
		v, ok, err := p.envValueFrom(ctx, pod, spec, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			env.set(e.Name, v)
		}
	}
	return env.list(), nil
}

func (p *realPod) envValueFrom(ctx context.Context, pod *corev1.Pod, spec *corev1.Container, from *corev1.EnvVarSource) (string, bool, error) {
	switch {
	case from.FieldRef != nil:
		v, err := p.fieldValue(pod, from.FieldRef.FieldPath)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := resourceValue(spec, from.ResourceFieldRef)
		return v, err == nil, err
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		return p.dataKey(ctx, "secret", ref.Name, ref.Key, ref.Optional)
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		return p.dataKey(ctx, "configMap", ref.Name, ref.Key, ref.Optional)
	}
	return "", false, fmt.Errorf("unsupported valueFrom")
}

// podData reads a Secret's or ConfigMap's data in the pod's namespace;
// found is false for a missing optional one.
func (p *realPod) podData(ctx context.Context, kind, name string, optional *bool) (data map[string][]byte, found bool, err error) {
	if kind == "secret" {
		s, err := p.r.cs.CoreV1().Secrets(p.namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return s.Data, true, nil
		}
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("secret %q: %w", name, err)
	}
	cm, err := p.r.cs.CoreV1().ConfigMaps(p.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("configMap %q: %w", name, err)
	}
	data = map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data, true, nil
}

// dataKey is one key of a Secret or ConfigMap (secretKeyRef, configMapKeyRef).
func (p *realPod) dataKey(ctx context.Context, kind, name, key string, optional *bool) (string, bool, error) {
	data, found, err := p.podData(ctx, kind, name, optional)
	if err != nil || !found {
		return "", false, err
	}
	v, ok := data[key]
	if !ok && (optional == nil || !*optional) {
		return "", false, fmt.Errorf("%s %q has no key %q", kind, name, key)
	}
	return string(v), ok, nil
}

// fieldValue is the downward API.
func (p *realPod) fieldValue(pod *corev1.Pod, path string) (string, error) {
	mapKey := func(prefix string, m map[string]string) (string, bool) {
		if strings.HasPrefix(path, prefix+"['") && strings.HasSuffix(path, "']") {
			return m[path[len(prefix)+2:len(path)-2]], true
		}
		return "", false
	}
	if v, ok := mapKey("metadata.labels", pod.Labels); ok {
		return v, nil
	}
	if v, ok := mapKey("metadata.annotations", pod.Annotations); ok {
		return v, nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return p.podIP, nil
	case "status.hostIP", "status.hostIPs":
		return p.hostIP(), nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

func formatMap(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("%s=%q", k, v))
	}
	return strings.Join(lines, "\n")
}

// hostIP is the node's InternalIP (a label: nothing listens there).
func (p *realPod) hostIP() string {
	node, err := p.r.nodes.Get(p.current().Spec.NodeName)
	if err == nil {
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address
			}
		}
	}
	return "127.0.0.1"
}

// resourceValue: limits fall back to the node's allocatable (as on a kubelet).
func resourceValue(spec *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	name, kind := "", ""
	if n, ok := strings.CutPrefix(ref.Resource, "limits."); ok {
		name, kind = n, "limits"
	} else if n, ok := strings.CutPrefix(ref.Resource, "requests."); ok {
		name, kind = n, "requests"
	} else {
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	list := spec.Resources.Limits
	if kind == "requests" {
		list = spec.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		switch name {
		case "cpu":
			q = resource.MustParse("32")
		case "memory":
			q = resource.MustParse("256Gi")
		default:
			q = resource.MustParse("0")
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// writePodFiles writes the pod's /etc/hosts, /etc/hostname and
// /etc/resolv.conf. The pod's own name resolves to loopback (its only
// address); the nameserver is localcluster's, inside the pod (dns.go).
func writePodFiles(dir string, pod *corev1.Pod) error {
	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", hostname)
	for _, ha := range pod.Spec.HostAliases {
		hosts += ha.IP + "\t" + strings.Join(ha.Hostnames, " ") + "\n"
	}
	resolv := fmt.Sprintf("nameserver 127.0.0.1\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", pod.Namespace)
	for name, content := range map[string]string{"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
