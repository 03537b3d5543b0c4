package main

// The runc bundle of a container run: an overlayfs root (the cached image
// below, a fresh upper dir above) and config.json built from the pod spec.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// defaultCapabilities is the set containerd and Docker give a container.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// prepareRoot mounts a fresh overlayfs root for this run.
func (c *container) prepareRoot() (string, func(), error) {
	b := c.bundle()
	rootfs := filepath.Join(b, "rootfs")
	_ = unix.Unmount(rootfs, unix.MNT_DETACH)
	if err := os.RemoveAll(b); err != nil {
		return "", nil, err
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(b, d), 0o755); err != nil {
			return "", nil, err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", c.image.rootfs, filepath.Join(b, "upper"), filepath.Join(b, "work"))
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return "", nil, fmt.Errorf("overlay root: %w", err)
	}
	return rootfs, func() {
		_ = unix.Unmount(rootfs, unix.MNT_DETACH)
		_ = os.RemoveAll(b)
	}, nil
}

// writeSpec writes config.json for this run.
func (c *container) writeSpec(rootfs string) error {
	pod := c.p.current()
	user, err := c.user(pod, rootfs)
	if err != nil {
		return err
	}
	env, err := c.p.containerEnv(pod, &c.spec, c.image.config.Env)
	if err != nil {
		return err
	}
	args := commandLine(&c.spec, c.image.config.Entrypoint, c.image.config.Cmd, env)
	if len(args) == 0 {
		return fmt.Errorf("container %s: no command (the pod gives none and the image has no entrypoint)", c.spec.Name)
	}
	cwd := c.spec.WorkingDir
	if cwd == "" {
		cwd = c.image.config.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	sc := c.spec.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	privileged := sc.Privileged != nil && *sc.Privileged
	caps := capabilitySet(sc.Capabilities, privileged)
	readOnly := sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	noNewPrivs := sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation

	mounts := []rspec.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(c.p.dir, "hosts"), Options: []string{"rbind", "ro"}},
		{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(c.p.dir, "hostname"), Options: []string{"rbind", "ro"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(c.p.dir, "resolv.conf"), Options: []string{"rbind", "ro"}},
	}
	if c.p.current().Spec.HostNetwork {
		mounts[5].Type, mounts[5].Source, mounts[5].Options = "bind", "/sys", []string{"rbind", "nosuid", "noexec", "nodev", "ro"}
	}
	volMounts, err := c.p.volumeMounts(&c.spec)
	if err != nil {
		return err
	}
	mounts = append(mounts, volMounts...)

	namespaces := []rspec.LinuxNamespace{{Type: rspec.PIDNamespace}, {Type: rspec.IPCNamespace}, {Type: rspec.UTSNamespace}, {Type: rspec.MountNamespace}}
	c.p.mu.Lock()
	if c.p.ns != nil {
		namespaces = append(namespaces, rspec.LinuxNamespace{Type: rspec.NetworkNamespace, Path: c.p.ns.path})
	}
	c.p.mu.Unlock()

	hostname := pod.Name
	if pod.Spec.Hostname != "" {
		hostname = pod.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	spec := rspec.Spec{
		Version: rspec.Version,
		Process: &rspec.Process{
			User: user, Args: args, Env: env, Cwd: cwd,
			Capabilities: &rspec.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: noNewPrivs,
		},
		Root:     &rspec.Root{Path: rootfs, Readonly: readOnly},
		Hostname: hostname,
		Mounts:   mounts,
		Linux: &rspec.Linux{
			Namespaces: namespaces,
			Resources:  c.resources(),
		},
	}
	if !privileged {
		spec.Linux.MaskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}
		spec.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	}
	if c.p.r.cgroups {
		spec.Linux.CgroupsPath = "localcluster/" + c.id
	}
	data, err := json.MarshalIndent(&spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.bundle(), "config.json"), data, 0o600)
}

// resources: memory and CPU limits (cgroups), when the machine lets us.
func (c *container) resources() *rspec.LinuxResources {
	res := &rspec.LinuxResources{Devices: []rspec.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	if !c.p.r.cgroups {
		return res
	}
	if mem, ok := c.spec.Resources.Limits[corev1.ResourceMemory]; ok && mem.Value() > 0 {
		limit := mem.Value()
		res.Memory = &rspec.LinuxMemory{Limit: &limit}
	}
	if cpu, ok := c.spec.Resources.Limits[corev1.ResourceCPU]; ok && cpu.MilliValue() > 0 {
		period := uint64(100000)
		quota := cpu.MilliValue() * 100 // 1000m = one period
		res.CPU = &rspec.LinuxCPU{Period: &period, Quota: &quota}
	}
	return res
}

// capabilitySet applies drop/add (ALL understood) to the default set.
func capabilitySet(sc *corev1.Capabilities, privileged bool) []string {
	if privileged {
		var all []string
		for i := 0; i <= 40; i++ {
			if name := capName(i); name != "" {
				all = append(all, name)
			}
		}
		return all
	}
	set := map[string]bool{}
	for _, c := range defaultCapabilities {
		set[c] = true
	}
	norm := func(c corev1.Capability) string {
		s := strings.ToUpper(string(c))
		if !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	if sc != nil {
		for _, d := range sc.Drop {
			if norm(d) == "CAP_ALL" {
				set = map[string]bool{}
				continue
			}
			delete(set, norm(d))
		}
		for _, a := range sc.Add {
			set[norm(a)] = true
		}
	}
	out := []string{}
	for c := range set {
		out = append(out, c)
	}
	return out
}

var capNames = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}

func capName(i int) string {
	if i < len(capNames) {
		return capNames[i]
	}
	return ""
}

// user resolves uid/gid: the container's, else the pod's securityContext,
// else the image's User (numeric or a name from its /etc/passwd).
func (c *container) user(pod *corev1.Pod, rootfs string) (rspec.User, error) {
	var uid, gid *int64
	var nonRoot *bool
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid, nonRoot = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
	}
	if sc := c.spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
	}
	u := rspec.User{}
	imgUID, imgGID, err := imageUser(c.image.config.User, rootfs)
	if err != nil {
		return u, err
	}
	u.UID, u.GID = uint32(imgUID), uint32(imgGID)
	if uid != nil {
		u.UID = uint32(*uid)
		if gid == nil && c.image.config.User == "" {
			u.GID = 0
		}
	}
	if gid != nil {
		u.GID = uint32(*gid)
	}
	if nonRoot != nil && *nonRoot && u.UID == 0 {
		return u, fmt.Errorf("container %s has runAsNonRoot and image will run as root", c.spec.Name)
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.FSGroup != nil {
			u.AdditionalGids = append(u.AdditionalGids, uint32(*psc.FSGroup))
		}
		for _, g := range psc.SupplementalGroups {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	return u, nil
}

func imageUser(spec, rootfs string) (int64, int64, error) {
	if spec == "" {
		return 0, 0, nil
	}
	name, group, _ := strings.Cut(spec, ":")
	uid, gid := int64(-1), int64(-1)
	if n, err := strconv.ParseInt(name, 10, 64); err == nil {
		uid = n
	}
	if group != "" {
		if n, err := strconv.ParseInt(group, 10, 64); err == nil {
			gid = n
		}
	}
	if uid < 0 || (gid < 0 && group == "") {
		data, _ := os.ReadFile(filepath.Join(rootfs, "etc", "passwd"))
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) < 4 || (f[0] != name && f[2] != name) {
				continue
			}
			if uid < 0 {
				uid, _ = strconv.ParseInt(f[2], 10, 64)
			}
			if gid < 0 && group == "" {
				gid, _ = strconv.ParseInt(f[3], 10, 64)
			}
		}
	}
	if uid < 0 {
		return 0, 0, fmt.Errorf("image user %q: not numeric and not in the image's /etc/passwd", spec)
	}
	if gid < 0 {
		if group != "" {
			return 0, 0, fmt.Errorf("image group %q is not numeric", group)
		}
		gid = uid
	}
	return uid, gid, nil
}

// commandLine: Kubernetes' rules for command/args over the image's
// entrypoint/cmd, with $(VAR) expanded from the container's environment.
func commandLine(spec *corev1.Container, entrypoint, cmd, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	expand := func(in []string) []string {
		out := make([]string, len(in))
		for i, a := range in {
			out[i] = expandVars(a, vars)
		}
		return out
	}
	switch {
	case len(spec.Command) > 0:
		return append(expand(spec.Command), expand(spec.Args)...)
	case len(spec.Args) > 0:
		return append(append([]string{}, entrypoint...), expand(spec.Args)...)
	default:
		return append(append([]string{}, entrypoint...), cmd...)
	}
}

// expandVars implements Kubernetes' $(VAR) expansion: defined variables are
// replaced, $$ escapes, anything else stays as written.
func expandVars(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
