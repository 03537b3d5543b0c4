package main

// realPod supervises one real pod: its sandbox (network namespace, API server
// tunnel, port forwarders, volumes), its init containers in order, then its
// containers, each restarted per the pod's restartPolicy with back-off, and
// its deletion (SIGTERM, grace period, SIGKILL, pod removed).

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

const (
	backoffInitial = time.Second
	backoffMax     = 40 * time.Second
	backoffReset   = time.Minute // a container that ran this long starts over at backoffInitial
)

type realPod struct {
	r         *runner
	uid       types.UID
	namespace string
	name      string
	podIP     string
	dir       string
	ctx       context.Context // cancelled when the pod terminates
	cancel    context.CancelFunc
	kick      chan struct{} // status changed
	done      chan struct{} // run returned

	mu           sync.Mutex
	pod          *corev1.Pod
	ns           *netns // nil with hostNetwork
	listeners    []net.Listener
	closers      []interface{ Close() error } // other sockets of the sandbox (DNS)
	ports        map[int32]string             // containerPort -> host loopback address
	sandboxReady bool
	initialized  bool
	setupErr     string
	startTime    metav1.Time
	init, main   []*container
	terminating  sync.Once
	vols         map[string]podVolume // volume name -> where it is on the host
	finished     bool                 // every container ended and none will restart
}

func newRealPod(r *runner, pod *corev1.Pod, ip string) *realPod {
	ctx, cancel := context.WithCancel(context.Background())
	p := &realPod{
		r: r, uid: pod.UID, namespace: pod.Namespace, name: pod.Name, podIP: ip,
		dir:    filepath.Join(r.dataDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)),
		ctx:    ctx,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		pod:    pod.DeepCopy(),
		ports:  map[int32]string{},
	}
	for _, c := range pod.Spec.InitContainers {
		p.init = append(p.init, newContainer(p, c))
	}
	for _, c := range pod.Spec.Containers {
		p.main = append(p.main, newContainer(p, c))
	}
	return p
}

func (p *realPod) current() *corev1.Pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pod
}

func (p *realPod) labels() map[string]string { return p.current().Labels }

func (p *realPod) isReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.initialized {
		return false
	}
	for _, c := range p.main {
		if !c.ready {
			return false
		}
	}
	return true
}

// observe takes the API's latest view of the pod.
func (p *realPod) observe(pod *corev1.Pod) {
	p.mu.Lock()
	p.pod = pod.DeepCopy()
	p.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		grace := int64(30)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		go p.terminate(time.Duration(grace)*time.Second, true)
	}
}

func (p *realPod) changed() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run sets the sandbox up, runs the init containers in order, then the
// containers until they end for good or the pod terminates.
func (p *realPod) run() {
	defer close(p.done)
	go p.statusLoop()
	p.mu.Lock()
	p.startTime = metav1.Now()
	p.mu.Unlock()
	backoff := backoffInitial
	for {
		err := p.setup()
		if err == nil {
			break
		}
		klog.ErrorS(err, "runner: pod sandbox", "pod", klog.KRef(p.namespace, p.name))
		p.mu.Lock()
		p.setupErr = err.Error()
		p.mu.Unlock()
		p.changed()
		if !sleepCtx(p.ctx, backoff) {
			return
		}
		backoff = min(2*backoff, backoffMax)
	}
	p.mu.Lock()
	p.setupErr = ""
	p.sandboxReady = true
	p.mu.Unlock()
	p.changed()

	policy := p.current().Spec.RestartPolicy
	for _, c := range p.init {
		backoff := backoffInitial
		for {
			code := c.runOnce()
			if p.ctx.Err() != nil {
				return
			}
			if code == 0 {
				break
			}
			if policy == corev1.RestartPolicyNever {
				p.finish()
				return
			}
			c.waitBackoff(&backoff)
			if p.ctx.Err() != nil {
				return
			}
		}
	}
	p.mu.Lock()
	p.initialized = true
	closeInitOnlyServiceNames(p.dir) // svcnames.go; under the lock, as the DNS server's additions
	p.mu.Unlock()
	p.changed()

	var wg sync.WaitGroup
	for _, c := range p.main {
		wg.Add(1)
		go func() { defer wg.Done(); c.supervise(policy) }()
	}
	wg.Wait()
	if p.ctx.Err() == nil {
		p.finish()
	}
}

func (p *realPod) finish() {
	p.mu.Lock()
	p.finished = true
	p.mu.Unlock()
	p.changed()
}

// setup builds the sandbox; it is idempotent so a failed attempt can be retried.
func (p *realPod) setup() error {
	pod := p.current()
	if err := os.MkdirAll(p.dir, 0o711); err != nil {
		return err
	}
	for _, c := range append(append([]*container{}, p.init...), p.main...) {
		if c.image == nil {
			img, err := p.r.store.get(c.spec.Image)
			if err != nil {
				return err
			}
			c.image = img
		}
	}
	if err := writePodFiles(p.dir, pod); err != nil {
		return err
	}
	if err := p.prepareVolumes(pod); err != nil {
		return err
	}
	p.mu.Lock()
	haveNetns := p.ns != nil || pod.Spec.HostNetwork
	p.mu.Unlock()
	if haveNetns {
		return nil
	}
	ns, err := newNetns(filepath.Join(p.dir, "netns"))
	if err != nil {
		return err
	}
	// The API server, as in-cluster config finds it: 127.0.0.1:<its port> inside the pod.
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.r.apiPort))
	l, err := ns.listen(apiAddr)
	if err != nil {
		ns.remove()
		return fmt.Errorf("API server tunnel in the pod's network namespace: %w", err)
	}
	go serveForward(l, "apiserver", func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", apiAddr)
	})
	listeners := []net.Listener{l}
	listeners = append(listeners, p.r.serveServiceNames(ns, p.dir, pod)...) // svcnames.go
	ports := map[int32]string{}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				continue
			}
			if _, done := ports[port.ContainerPort]; done {
				continue
			}
			hl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				continue
			}
			target := int(port.ContainerPort)
			go serveForward(hl, fmt.Sprintf("%s/%s:%d", p.namespace, p.name, target), func(ctx context.Context) (net.Conn, error) {
				return ns.dial(ctx, target)
			})
			listeners = append(listeners, hl)
			ports[port.ContainerPort] = hl.Addr().String()
		}
	}
	p.mu.Lock()
	p.ns, p.listeners, p.ports = ns, listeners, ports
	p.mu.Unlock()
	if err := p.startDNS(); err != nil {
		return err
	}
	if len(ports) > 0 {
		go p.annotatePorts(ports)
	}
	return nil
}

func (p *realPod) annotatePorts(ports map[int32]string) {
	keys := make([]int, 0, len(ports))
	for k := range ports {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d=%s", k, ports[int32(k)]))
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annPorts, strings.Join(parts, ","))
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	_, err := p.r.cs.CoreV1().Pods(p.namespace).Patch(ctx, p.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		klog.V(1).InfoS("runner: annotate ports", "pod", klog.KRef(p.namespace, p.name), "err", err)
	}
}

// dial connects to a port of the pod (inside its network namespace).
func (p *realPod) dial(ctx context.Context, port int) (net.Conn, error) {
	p.mu.Lock()
	ns := p.ns
	hostNet := p.pod.Spec.HostNetwork
	p.mu.Unlock()
	if ns == nil {
		if !hostNet {
			return nil, fmt.Errorf("pod %s/%s has no network yet", p.namespace, p.name)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	return ns.dial(ctx, port)
}

// namedPort resolves a container port name of the pod.
func (p *realPod) namedPort(name string) (int, bool) {
	for _, c := range p.current().Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == name {
				return int(port.ContainerPort), true
			}
		}
	}
	return 0, false
}

// terminate stops every container (SIGTERM, then SIGKILL after grace), tears
// the sandbox down and, if asked, removes the pod from the API.
func (p *realPod) terminate(grace time.Duration, deleteFromAPI bool) {
	first := false
	p.terminating.Do(func() { first = true })
	if !first {
		return
	}
	klog.InfoS("runner: stopping pod", "pod", klog.KRef(p.namespace, p.name), "grace", grace)
	p.cancel()
	var wg sync.WaitGroup
	for _, c := range append(append([]*container{}, p.init...), p.main...) {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(grace) }()
	}
	wg.Wait()
	<-p.done
	p.mu.Lock()
	for _, l := range p.listeners {
		l.Close()
	}
	for _, c := range p.closers {
		c.Close()
	}
	if p.ns != nil {
		p.ns.remove()
	}
	p.mu.Unlock()
	_ = os.RemoveAll(p.dir)
	if deleteFromAPI {
		zero := int64(0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.r.cs.CoreV1().Pods(p.namespace).Delete(ctx, p.name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &p.uid},
		})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			klog.ErrorS(err, "runner: remove pod", "pod", klog.KRef(p.namespace, p.name))
		}
	}
	p.r.removed(p.uid)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
