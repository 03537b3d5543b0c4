package main

// The runner: pods whose every image is in the local image store run for real
// under runc; every other pod is left to kwok. Each bound pod is classified
// once and annotated (annRuntime); kwok's pod stages only act on pods
// annotated "kwok" (see kwokStagesFor).

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

const (
	annRuntime   = "localcluster.meshoperator.dev/runtime"
	annPorts     = "localcluster.meshoperator.dev/ports"
	runtimeRunc  = "runc"
	runtimeKwok  = "kwok"
	podIPPrefix  = "10.245." // pod IPs of real pods: labels only, never assigned to an interface
	kubeletPort  = 10250
	runnerUserAg = "localcluster-runner"
)

type runner struct {
	cs       kubernetes.Interface
	store    *imageStore
	dataDir  string // <data-dir>/pods
	runcBin  string
	runcRoot string
	apiPort  int
	cgroups  bool
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	pods     corelisters.PodLister

	// dialService connects to a Service's port on a real pod (the component proxy's rule).
	dialService func(ctx context.Context, host string, port int) (net.Conn, error)

	mu     sync.Mutex
	real   map[types.UID]*realPod
	nextIP uint32
}

func newRunner(cs kubernetes.Interface, factory informers.SharedInformerFactory, dataDir, runcBin, storeDir string, apiPort int) (*runner, error) {
	r := &runner{
		cs:       cs,
		store:    newImageStore(storeDir, defaultRootfsCache()),
		dataDir:  filepath.Join(dataDir, "pods"),
		runcBin:  runcBin,
		runcRoot: filepath.Join(dataDir, "runc"),
		apiPort:  apiPort,
		services: factory.Core().V1().Services().Lister(),
		nodes:    factory.Core().V1().Nodes().Lister(),
		real:     map[types.UID]*realPod{},
		nextIP:   2,
	}
	// Cgroup limits stay off until a suite proves them alongside kwok and the other components:
	// they were switched off while chasing a SIGKILL of kwok in CI (the cause turned out to be
	// kwok's Pdeathsig, see startKwok). Without them limits are not enforced (documented).
	r.cgroups = cgroupsEnabled && cgroupsWritable()
	if !r.cgroups {
		klog.InfoS("runner: container memory/cpu limits are not applied (cgroups off)")
	}
	for _, dir := range []string{r.dataDir, r.runcRoot} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
	}
	podInf := factory.Core().V1().Pods().Informer()
	r.pods = factory.Core().V1().Pods().Lister()
	_, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.observe(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { r.observe(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				r.forget(pod.UID)
			}
		},
	})
	return r, err
}

// cgroupsWritable: can we create cgroups for containers (v1 memory controller
// or the v2 unified hierarchy)?
// cgroupsEnabled: see newRunner; flip only with a test that real pods and kwok survive deletes.
const cgroupsEnabled = false

func cgroupsWritable() bool {
	for _, base := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		probe := filepath.Join(base, fmt.Sprintf("localcluster-probe-%d", os.Getpid()))
		if err := os.Mkdir(probe, 0o755); err == nil {
			_ = os.Remove(probe)
			return true
		}
	}
	return false
}

// runcAvailable finds runc (flag, then PATH).
func runcAvailable(flagValue string) (string, error) {
	if flagValue == "" {
		flagValue = "runc"
	}
	return exec.LookPath(flagValue)
}

// observe classifies a newly bound pod, starts real ones and stops deleted ones.
func (r *runner) observe(pod *corev1.Pod) {
	if pod.Spec.NodeName == "" {
		return
	}
	switch pod.Annotations[annRuntime] {
	case "":
		runtime := runtimeKwok
		if r.allLocal(pod) {
			runtime = runtimeRunc
		}
		go r.annotate(pod, runtime)
		if runtime == runtimeRunc {
			r.start(pod)
		}
	case runtimeRunc:
		r.start(pod)
	}
	r.mu.Lock()
	p := r.real[pod.UID]
	r.mu.Unlock()
	if p != nil {
		p.observe(pod)
	}
}

func (r *runner) allLocal(pod *corev1.Pod) bool {
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		if _, ok := r.store.lookup(c.Image); !ok {
			return false
		}
	}
	return len(all) > 0
}

func (r *runner) annotate(pod *corev1.Pod, runtime string) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annRuntime, runtime)
	for attempt := 0; attempt < 5; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := r.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		cancel()
		if err == nil || apierrors.IsNotFound(err) {
			return
		}
		klog.V(1).InfoS("runner: annotate pod", "pod", klog.KObj(pod), "err", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// start creates the real pod's supervisor once.
func (r *runner) start(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.real[pod.UID]; ok {
		return
	}
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, 10<<24|245<<16|r.nextIP)
	r.nextIP++
	p := newRealPod(r, pod, ip.String())
	r.real[pod.UID] = p
	klog.InfoS("runner: running pod for real", "pod", klog.KObj(pod), "podIP", p.podIP)
	go p.run()
}

// forget stops a pod that disappeared from the API.
func (r *runner) forget(uid types.UID) {
	r.mu.Lock()
	p := r.real[uid]
	delete(r.real, uid)
	r.mu.Unlock()
	if p != nil {
		go p.terminate(0, false)
	}
}

// removed is called by a pod once it is gone.
func (r *runner) removed(uid types.UID) {
	r.mu.Lock()
	delete(r.real, uid)
	r.mu.Unlock()
}

// byIP finds a real pod by its pod IP.
func (r *runner) byIP(ip string) *realPod {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.real {
		if p.podIP == ip {
			return p
		}
	}
	return nil
}

// byName finds a real pod by namespace/name.
func (r *runner) byName(namespace, name string) *realPod {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.real {
		if p.namespace == namespace && p.name == name {
			return p
		}
	}
	return nil
}

// serviceBackends lists the real pods behind a Service, ready ones first.
func (r *runner) serviceBackends(svc *corev1.Service) []*realPod {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	r.mu.Lock()
	var out []*realPod
	for _, p := range r.real {
		if p.namespace == svc.Namespace && sel.Matches(labels.Set(p.labels())) {
			out = append(out, p)
		}
	}
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].isReady() && !out[j].isReady() })
	return out
}

// shutdown stops every real container (localcluster is exiting).
func (r *runner) shutdown(timeout time.Duration) {
	r.mu.Lock()
	pods := make([]*realPod, 0, len(r.real))
	for _, p := range r.real {
		pods = append(pods, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() { defer wg.Done(); p.terminate(timeout, false) }()
	}
	wg.Wait()
}

// containerID is the runc container id of a pod's container.
func containerID(namespace, pod, container string) string {
	id := namespace + "." + pod + "." + container
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, id)
}

// startRunner starts real pods unless --runtime=kwok or, with auto, runc is missing.
func (c *cluster) startRunner(cs kubernetes.Interface, factory informers.SharedInformerFactory, apiPort int) error {
	if c.o.runtime == runtimeKwok || c.o.nodes == 0 {
		return nil
	}
	runcBin, err := runcAvailable(c.o.runcBin)
	if err != nil {
		if c.o.runtime == "runc" {
			return fmt.Errorf("--runtime=runc: %w", err)
		}
		fmt.Fprintf(c.userOut, "localcluster: runc not found (%v): every pod is simulated; apt-get install runc to run local images for real\n", err)
		return nil
	}
	r, err := newRunner(cs, factory, c.dataDir, runcBin, c.o.imageStore, apiPort)
	if err != nil {
		return err
	}
	r.dialService = c.proxy.dial
	c.runner = r
	c.proxy.runner.Store(r)
	c.kubelet.runner.Store(r)
	klog.InfoS("runner: real pods enabled", "imageStore", c.o.imageStore, "runc", runcBin, "state", r.runcRoot)
	return nil
}

// kwokStagesFor: with the runner on, kwok's pod stages act only on pods the
// runner classified as simulated.
func kwokStagesFor(runnerOn bool) []byte {
	if !runnerOn {
		return kwokStages
	}
	const podSelector = "    kind: Pod\n  selector:\n    matchExpressions:\n"
	const onlySimulated = podSelector +
		"    - key: '.metadata.annotations[\"" + annRuntime + "\"]'\n" +
		"      operator: 'In'\n" +
		"      values:\n" +
		"      - '" + runtimeKwok + "'\n"
	return []byte(strings.ReplaceAll(string(kwokStages), podSelector, onlySimulated))
}
