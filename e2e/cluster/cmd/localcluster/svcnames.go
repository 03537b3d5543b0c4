package main

// Service names inside real pods (added by realosm for OSM's init containers,
// which wait for osm-bootstrap by `curl http://osm-bootstrap.<ns>.svc.cluster.local:9091/...`).
//
// When a pod's network namespace is created, every Service that exists then
// with a ClusterIP gets a loopback address inside the namespace — 127.x.y.z,
// the last three bytes of its IPv4 ClusterIP — listed in the pod's /etc/hosts
// as name.ns.svc.cluster.local, name.ns.svc, name.ns (and name, in the pod's
// namespace). localcluster listens on 127.x.y.z:<port> for each Service port
// inside the namespace and forwards each connection as its CONNECT proxy does
// (Service → a Ready real pod, targetPort resolved). Nothing leaves loopback;
// Services created after the pod are not known to it (no DNS server runs).
//
// A listener on 127.x.y.z:P stops the pod's own containers from binding :P
// (the wildcard address), so ports the pod's containers declare, and the
// ports of Services that select the pod, are served only until its init
// containers are done (OSM's init containers wait for
// osm-bootstrap on 9091, which osm-controller itself then serves).

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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// serviceLoopback is the address a Service gets inside pods: 127 + the last
// three bytes of its IPv4 ClusterIP; "" for headless or IPv6-only Services.
func serviceLoopback(svc *corev1.Service) string {
	ip := net.ParseIP(svc.Spec.ClusterIP).To4()
	if ip == nil {
		return ""
	}
	return fmt.Sprintf("127.%d.%d.%d", ip[1], ip[2], ip[3])
}

// serviceHostsLines are the /etc/hosts lines of every Service with a ClusterIP,
// sorted so the file is stable.
func serviceHostsLines(services []*corev1.Service, podNamespace string) []string {
	var lines []string
	for _, svc := range services {
		addr := serviceLoopback(svc)
		if addr == "" {
			continue
		}
		names := []string{
			svc.Name + "." + svc.Namespace + ".svc.cluster.local",
			svc.Name + "." + svc.Namespace + ".svc",
			svc.Name + "." + svc.Namespace,
		}
		if svc.Namespace == podNamespace {
			names = append(names, svc.Name)
		}
		lines = append(lines, addr+"\t"+strings.Join(names, " "))
	}
	sort.Strings(lines)
	return lines
}

// selects reports whether svc's selector picks pod: the pod serves that
// Service's ports itself, declared or not (osm-controller serves osm-validator).
func selects(svc *corev1.Service, pod *corev1.Pod) bool {
	if len(svc.Spec.Selector) == 0 || svc.Namespace != pod.Namespace {
		return false
	}
	return labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels))
}

// initOnly holds, per pod directory, the Service listeners to close once the
// pod's init containers are done.
var initOnly sync.Map // string -> []net.Listener

// declaresPort reports whether one of the pod's containers declares port.
func declaresPort(pod *corev1.Pod, port int32) bool {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.ContainerPort == port {
				return true
			}
		}
	}
	return false
}

// holdUntilInitialized adds a listener to those closed when the pod's init
// containers are done. The caller holds the pod's lock, as the closing does.
func holdUntilInitialized(podDir string, l net.Listener) {
	held, _ := initOnly.Load(podDir)
	listeners, _ := held.([]net.Listener)
	initOnly.Store(podDir, append(listeners, l))
}

// closeInitOnlyServiceNames closes the listeners on ports the pod's own
// containers are about to bind. The caller holds the pod's lock.
func closeInitOnlyServiceNames(podDir string) {
	if v, ok := initOnly.LoadAndDelete(podDir); ok {
		for _, l := range v.([]net.Listener) {
			_ = l.Close()
		}
	}
}

// serveServiceNames appends the Services to the pod's hosts file and listens
// on their loopback addresses inside ns; it returns the listeners to close
// with the pod.
func (r *runner) serveServiceNames(ns *netns, podDir string, pod *corev1.Pod) []net.Listener {
	podNamespace := pod.Namespace
	services, err := r.services.List(labels.Everything())
	if err != nil {
		return nil
	}
	if lines := serviceHostsLines(services, podNamespace); len(lines) > 0 {
		f, err := os.OpenFile(filepath.Join(podDir, "hosts"), os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil
		}
		_, _ = f.WriteString(strings.Join(lines, "\n") + "\n")
		f.Close()
	}
	proxy := &connectProxy{}
	proxy.runner.Store(r)
	var listeners, untilInitialized []net.Listener
	for _, svc := range services {
		addr := serviceLoopback(svc)
		if addr == "" {
			continue
		}
		host := svc.Name + "." + svc.Namespace + ".svc"
		for _, port := range svc.Spec.Ports {
			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				continue
			}
			l, err := ns.listen(net.JoinHostPort(addr, strconv.Itoa(int(port.Port))))
			if err != nil {
				continue
			}
			servicePort := int(port.Port)
			go serveForward(l, host+":"+strconv.Itoa(servicePort), func(ctx context.Context) (net.Conn, error) {
				return proxy.dial(ctx, host, servicePort)
			})
			listeners = append(listeners, l)
			if declaresPort(pod, port.Port) || selects(svc, pod) {
				untilInitialized = append(untilInitialized, l)
			}
		}
	}
	initOnly.Store(podDir, untilInitialized)
	return listeners
}
