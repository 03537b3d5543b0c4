package main

// A real pod's volumes, materialised under <pod dir>/volumes/<name> (or a
// hostPath / a hostPath PersistentVolume) and bind-mounted into containers.
// Projected ServiceAccount tokens come from TokenRequest, bound to the pod,
// and are rewritten at 80% of their life.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

type podVolume struct {
	path     string
	readOnly bool // secret, configMap, downwardAPI and projected volumes are always mounted read-only
}

type volumeFile struct {
	data []byte
	mode os.FileMode
}

func (p *realPod) prepareVolumes(pod *corev1.Pod) error {
	vols := map[string]podVolume{}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		dir := filepath.Join(p.dir, "volumes", v.Name)
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return err
			}
			_ = os.Chmod(dir, 0o777)
			vols[v.Name] = podVolume{path: dir}
		case v.HostPath != nil:
			if v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathDirectoryOrCreate {
				_ = os.MkdirAll(v.HostPath.Path, 0o755)
			}
			vols[v.Name] = podVolume{path: v.HostPath.Path}
		case v.PersistentVolumeClaim != nil:
			path, err := p.claimPath(v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			vols[v.Name] = podVolume{path: path, readOnly: v.PersistentVolumeClaim.ReadOnly}
		case v.Secret != nil || v.ConfigMap != nil || v.DownwardAPI != nil || v.Projected != nil:
			refresh, err := p.writeVolume(pod, v, dir)
			if err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			vols[v.Name] = podVolume{path: dir, readOnly: true}
			if refresh > 0 {
				go p.refreshVolume(pod, v, dir, refresh)
			}
		default:
			return fmt.Errorf("volume %s: this volume type is not supported by the local runner", v.Name)
		}
	}
	p.mu.Lock()
	p.vols = vols
	p.mu.Unlock()
	return nil
}

func (p *realPod) claimPath(name string) (string, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	claim, err := p.r.cs.CoreV1().PersistentVolumeClaims(p.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if claim.Spec.VolumeName == "" {
		return "", fmt.Errorf("claim %s is not bound", name)
	}
	pv, err := p.r.cs.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pv.Spec.HostPath == nil {
		return "", fmt.Errorf("volume %s of claim %s is not a hostPath volume", pv.Name, name)
	}
	return pv.Spec.HostPath.Path, nil
}

// writeVolume writes the files of a secret/configMap/downwardAPI/projected
// volume; it returns when the volume must be refreshed (0: never).
func (p *realPod) writeVolume(pod *corev1.Pod, v *corev1.Volume, dir string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	files := map[string]volumeFile{}
	var refresh time.Duration
	mode := func(item, def *int32) os.FileMode {
		if item != nil {
			return os.FileMode(*item)
		}
		if def != nil {
			return os.FileMode(*def)
		}
		return 0o644
	}
	addData := func(data map[string][]byte, items []corev1.KeyToPath, def *int32, what string) error {
		if len(items) == 0 {
			for k, d := range data {
				files[k] = volumeFile{d, mode(nil, def)}
			}
			return nil
		}
		for _, it := range items {
			d, ok := data[it.Key]
			if !ok {
				return fmt.Errorf("%s has no key %q", what, it.Key)
			}
			files[it.Path] = volumeFile{d, mode(it.Mode, def)}
		}
		return nil
	}
	fromData := func(kind, name string, optional *bool, items []corev1.KeyToPath, def *int32) error {
		data, found, err := p.podData(ctx, kind, name, optional)
		if err != nil || !found {
			return err
		}
		return addData(data, items, def, kind+" "+name)
	}
	downward := func(items []corev1.DownwardAPIVolumeFile, def *int32) error {
		for _, it := range items {
			var val string
			var err error
			switch {
			case it.FieldRef != nil:
				val, err = p.fieldValue(pod, it.FieldRef.FieldPath)
			case it.ResourceFieldRef != nil:
				val, err = resourceValue(containerNamed(pod, it.ResourceFieldRef.ContainerName), it.ResourceFieldRef)
			}
			if err != nil {
				return err
			}
			files[it.Path] = volumeFile{[]byte(val), mode(it.Mode, def)}
		}
		return nil
	}
	var err error
	switch {
	case v.Secret != nil:
		err = fromData("secret", v.Secret.SecretName, v.Secret.Optional, v.Secret.Items, v.Secret.DefaultMode)
	case v.ConfigMap != nil:
		err = fromData("configMap", v.ConfigMap.Name, v.ConfigMap.Optional, v.ConfigMap.Items, v.ConfigMap.DefaultMode)
	case v.DownwardAPI != nil:
		err = downward(v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
	case v.Projected != nil:
		def := v.Projected.DefaultMode
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				err = fromData("secret", src.Secret.Name, src.Secret.Optional, src.Secret.Items, def)
			case src.ConfigMap != nil:
				err = fromData("configMap", src.ConfigMap.Name, src.ConfigMap.Optional, src.ConfigMap.Items, def)
			case src.DownwardAPI != nil:
				err = downward(src.DownwardAPI.Items, def)
			case src.ServiceAccountToken != nil:
				var token string
				var expires time.Time
				token, expires, err = p.token(ctx, pod, src.ServiceAccountToken)
				files[src.ServiceAccountToken.Path] = volumeFile{[]byte(token), mode(nil, def)}
				if life := time.Until(expires); err == nil && (refresh == 0 || life*8/10 < refresh) {
					refresh = life * 8 / 10
				}
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		return 0, err
	}
	return refresh, writeFiles(dir, files, pod)
}

func containerNamed(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name || name == "" {
			return &pod.Spec.Containers[i]
		}
	}
	return &corev1.Container{}
}

// token asks for a ServiceAccount token bound to this pod.
func (p *realPod) token(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, time.Time, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	expiration := int64(3600)
	if src.ExpirationSeconds != nil {
		expiration = *src.ExpirationSeconds
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &expiration,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := p.r.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token for ServiceAccount %s: %w", sa, err)
	}
	return tr.Status.Token, tr.Status.ExpirationTimestamp.Time, nil
}

func (p *realPod) refreshVolume(pod *corev1.Pod, v *corev1.Volume, dir string, after time.Duration) {
	for {
		if !sleepCtx(p.ctx, after) {
			return
		}
		next, err := p.writeVolume(pod, v, dir)
		if err != nil {
			klog.ErrorS(err, "runner: refresh volume", "pod", klog.KRef(p.namespace, p.name), "volume", v.Name)
			next = 10 * time.Second
		}
		if next <= 0 {
			return
		}
		after = next
	}
}

// writeFiles replaces each file atomically (rename), so a reader never sees half a token.
func writeFiles(dir string, files map[string]volumeFile, pod *corev1.Pod) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	group := -1
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		group = int(*sc.FSGroup)
	}
	for rel, f := range files {
		clean := filepath.Clean("/" + rel)
		if clean == "/" || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("invalid file path %q", rel)
		}
		target := filepath.Join(dir, clean)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		tmp := filepath.Join(filepath.Dir(target), ".tmp-"+filepath.Base(target))
		if err := os.WriteFile(tmp, f.data, f.mode.Perm()); err != nil {
			return err
		}
		mode := f.mode.Perm()
		if group >= 0 {
			_ = os.Chown(tmp, -1, group)
			mode |= 0o040
		}
		_ = os.Chmod(tmp, mode)
		if err := os.Rename(tmp, target); err != nil {
			return err
		}
	}
	return nil
}

// volumeMounts: the container's volumeMounts as bind mounts.
func (p *realPod) volumeMounts(spec *corev1.Container) ([]rspec.Mount, error) {
	p.mu.Lock()
	vols := p.vols
	p.mu.Unlock()
	var out []rspec.Mount
	for _, vm := range spec.VolumeMounts {
		v, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no such volume", vm.Name)
		}
		src := v.path
		if vm.SubPath != "" {
			sub := filepath.Clean("/" + vm.SubPath)
			src = filepath.Join(v.path, sub)
			if _, err := os.Stat(src); os.IsNotExist(err) {
				_ = os.MkdirAll(src, 0o755)
			}
		}
		opts := []string{"rbind", "nosuid", "nodev"}
		if vm.ReadOnly || v.readOnly {
			opts = append(opts, "ro")
		}
		out = append(out, rspec.Mount{Destination: vm.MountPath, Type: "bind", Source: src, Options: opts})
	}
	return out, nil
}
