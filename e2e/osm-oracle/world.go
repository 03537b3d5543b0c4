package main

// One OSM v1.2.4 control plane per input, wired as cmd/osm-controller wires it (informer
// collection, Kubernetes controller, SMI client, configurator, policy controller, kube
// provider, mesh catalog, proxy registry), but on client-go/smi-sdk-go/OSM **fake clientsets**
// as OSM's own unit tests use them, so no API server is needed. What the cluster's controllers
// would add is synthesized: a Pod per workload (with the sidecar's `osm-proxy-uuid` label) and
// the Endpoints of every Service (OSM takes a MeshService's target port from them).
//
// The only thing replaced is the ORDER in which the SMI client lists TrafficTargets: OSM lists
// them from an informer store (a Go map), so their order is arbitrary; orderedMeshSpec wraps the
// real smi.Client and sorts its (already filtered) answer by a rank the caller sets.

import (
	"fmt"
	"sort"
	"sync"

	"github.com/google/uuid"
	smiAccess "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	accessFake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/access/clientset/versioned/fake"
	specsFake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/specs/clientset/versioned/fake"
	splitFake "github.com/servicemeshinterface/smi-sdk-go/pkg/gen/client/split/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubeFake "k8s.io/client-go/kubernetes/fake"

	"github.com/openservicemesh/osm/pkg/catalog"
	"github.com/openservicemesh/osm/pkg/certificate"
	"github.com/openservicemesh/osm/pkg/configurator"
	"github.com/openservicemesh/osm/pkg/constants"
	"github.com/openservicemesh/osm/pkg/endpoint"
	"github.com/openservicemesh/osm/pkg/envoy"
	"github.com/openservicemesh/osm/pkg/envoy/registry"
	configFake "github.com/openservicemesh/osm/pkg/gen/client/config/clientset/versioned/fake"
	policyFake "github.com/openservicemesh/osm/pkg/gen/client/policy/clientset/versioned/fake"
	"github.com/openservicemesh/osm/pkg/identity"
	"github.com/openservicemesh/osm/pkg/k8s"
	"github.com/openservicemesh/osm/pkg/k8s/informers"
	"github.com/openservicemesh/osm/pkg/messaging"
	"github.com/openservicemesh/osm/pkg/policy"
	"github.com/openservicemesh/osm/pkg/providers/kube"
	"github.com/openservicemesh/osm/pkg/service"
	"github.com/openservicemesh/osm/pkg/smi"
)

const (
	meshName       = "osm"
	osmNamespace   = "osm-system"
	meshConfigName = "osm-mesh-config"
)

var (
	certManagerOnce sync.Once
	certManager     *certificate.Manager
	certManagerErr  error
)

// sharedCertManager is OSM's fake certificate manager (trust domain "fake.domain.com"); it only
// names principals, so one serves every input.
func sharedCertManager() (*certificate.Manager, error) {
	certManagerOnce.Do(func() { certManager, certManagerErr = certificate.FakeCertManager() })
	return certManager, certManagerErr
}

// orderedMeshSpec is OSM's smi.Client with TrafficTargets listed in a chosen order.
type orderedMeshSpec struct {
	smi.MeshSpec
	rank map[string]int // "ns/name" -> position; unranked ones keep the client's order, last
}

func (m *orderedMeshSpec) ListTrafficTargets(options ...smi.TrafficTargetListOption) []*smiAccess.TrafficTarget {
	targets := m.MeshSpec.ListTrafficTargets(options...)
	rankOf := func(t *smiAccess.TrafficTarget) int {
		if r, ok := m.rank[t.Namespace+"/"+t.Name]; ok {
			return r
		}
		return len(m.rank)
	}
	sort.SliceStable(targets, func(i, j int) bool { return rankOf(targets[i]) < rankOf(targets[j]) })
	return targets
}

// workload is one sidecar: a Pod of a Deployment or StatefulSet.
type workload struct {
	Key      string // "ns/name" of the Deployment/StatefulSet
	Identity identity.ServiceIdentity
	Proxy    *envoy.Proxy
	Pod      *corev1.Pod
}

// World is OSM's controller state for one input.
type World struct {
	stop        chan struct{}
	Catalog     *catalog.MeshCatalog
	MeshSpec    *orderedMeshSpec
	Config      configurator.Configurator
	Registry    *registry.ProxyRegistry
	Certs       *certificate.Manager
	TrustDomain string
	Workloads   []*workload
}

// Close stops the informers and OSM's goroutines.
func (w *World) Close() { close(w.stop) }

// NewWorld starts OSM's controller pieces on fake clientsets holding the objects.
func NewWorld(o *Objects) (*World, error) {
	certs, err := sharedCertManager()
	if err != nil {
		return nil, fmt.Errorf("OSM fake certificate manager: %w", err)
	}
	var kubeObjects []runtime.Object
	namespaces := map[string]bool{}
	addNamespace := func(ns string) {
		if ns != "" && !namespaces[ns] {
			namespaces[ns] = true
			kubeObjects = append(kubeObjects, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: ns, Labels: map[string]string{constants.OSMKubeResourceMonitorAnnotation: meshName}}})
		}
	}

	var workloads []*workload
	var pods []*corev1.Pod
	addWorkload := func(ns, name string, template corev1.PodTemplateSpec) {
		addNamespace(ns)
		sa := template.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		id := uuid.New()
		labels := map[string]string{}
		for k, v := range template.Labels {
			labels[k] = v
		}
		labels[constants.EnvoyUniqueIDLabelName] = id.String()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, len(pods)), Namespace: ns, Labels: labels,
				UID: types.UID("pod-" + id.String())},
			Spec:   *template.Spec.DeepCopy(),
			Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.%d.%d.%d", (len(pods)>>16)&255, (len(pods)>>8)&255, len(pods)&255+1)},
		}
		pod.Spec.ServiceAccountName = sa
		pods = append(pods, pod)
		kubeObjects = append(kubeObjects, pod)
		svcIdentity := identity.K8sServiceAccount{Name: sa, Namespace: ns}.ToServiceIdentity()
		workloads = append(workloads, &workload{
			Key:      fmt.Sprintf("%s/%s", ns, name),
			Identity: svcIdentity,
			Proxy:    envoy.NewProxy(envoy.KindSidecar, id, svcIdentity, nil),
			Pod:      pod,
		})
	}
	for _, d := range o.Deployments {
		addWorkload(d.Namespace, d.Name, d.Spec.Template)
	}
	for _, s := range o.StatefulSets {
		addWorkload(s.Namespace, s.Name, s.Spec.Template)
	}
	for _, svc := range o.Services {
		addNamespace(svc.Namespace)
		kubeObjects = append(kubeObjects, svc, endpointsFor(svc, pods))
	}

	var accessObjects, specsObjects, splitObjects []runtime.Object
	for _, t := range o.TrafficTargets {
		addNamespace(t.Namespace)
		accessObjects = append(accessObjects, t)
	}
	for _, g := range o.HTTPRouteGroups {
		addNamespace(g.Namespace)
		specsObjects = append(specsObjects, g)
	}
	for _, r := range o.TCPRoutes {
		addNamespace(r.Namespace)
		specsObjects = append(specsObjects, r)
	}
	for _, s := range o.TrafficSplits {
		addNamespace(s.Namespace)
		splitObjects = append(splitObjects, s)
	}

	stop := make(chan struct{})
	kubeClient := kubeFake.NewSimpleClientset(kubeObjects...)
	policyClient := policyFake.NewSimpleClientset()
	informerCollection, err := informers.NewInformerCollection(meshName, stop,
		informers.WithKubeClient(kubeClient),
		informers.WithSMIClients(splitFake.NewSimpleClientset(splitObjects...), specsFake.NewSimpleClientset(specsObjects...),
			accessFake.NewSimpleClientset(accessObjects...)),
		informers.WithConfigClient(configFake.NewSimpleClientset(), meshConfigName, osmNamespace),
		informers.WithPolicyClient(policyClient),
	)
	if err != nil {
		close(stop)
		return nil, fmt.Errorf("OSM informer collection: %w", err)
	}
	msgBroker := messaging.NewBroker(stop)
	cfg := configurator.NewConfigurator(informerCollection, osmNamespace, meshConfigName, msgBroker)
	kubeController := k8s.NewKubernetesController(informerCollection, policyClient, msgBroker)
	meshSpec := &orderedMeshSpec{MeshSpec: smi.NewSMIClient(informerCollection, osmNamespace, kubeController, msgBroker)}
	kubeProvider := kube.NewClient(kubeController, cfg)
	policyController := policy.NewPolicyController(informerCollection, kubeController, msgBroker)
	meshCatalog := catalog.NewMeshCatalog(kubeController, meshSpec, certs, policyController, stop, cfg,
		[]service.Provider{kubeProvider}, []endpoint.Provider{kubeProvider}, msgBroker)
	proxyRegistry := registry.NewProxyRegistry(&registry.KubeProxyServiceMapper{KubeController: kubeController}, msgBroker)

	return &World{
		stop:        stop,
		Catalog:     meshCatalog,
		MeshSpec:    meshSpec,
		Config:      cfg,
		Registry:    proxyRegistry,
		Certs:       certs,
		TrustDomain: certs.GetTrustDomain(),
		Workloads:   workloads,
	}, nil
}

// endpointsFor is what the endpoints controller would write for svc: one subset per matching
// pod, ports resolved from targetPort (a number, or a container port's name).
func endpointsFor(svc *corev1.Service, pods []*corev1.Pod) *corev1.Endpoints {
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	if len(svc.Spec.Selector) == 0 {
		return ep
	}
	for _, pod := range pods {
		if pod.Namespace != svc.Namespace || !selects(svc.Spec.Selector, pod.Labels) {
			continue
		}
		subset := corev1.EndpointSubset{Addresses: []corev1.EndpointAddress{{IP: pod.Status.PodIP}}}
		for _, port := range svc.Spec.Ports {
			target, ok := resolveTargetPort(port, pod)
			if !ok {
				continue
			}
			protocol := port.Protocol
			if protocol == "" {
				protocol = corev1.ProtocolTCP
			}
			subset.Ports = append(subset.Ports, corev1.EndpointPort{Name: port.Name, Port: target, Protocol: protocol,
				AppProtocol: port.AppProtocol})
		}
		ep.Subsets = append(ep.Subsets, subset)
	}
	return ep
}

func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func resolveTargetPort(port corev1.ServicePort, pod *corev1.Pod) (int32, bool) {
	switch {
	case port.TargetPort.Type == intstr.String && port.TargetPort.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == port.TargetPort.StrVal {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case port.TargetPort.Type == intstr.Int && port.TargetPort.IntVal != 0:
		return port.TargetPort.IntVal, true
	default:
		return port.Port, true
	}
}
