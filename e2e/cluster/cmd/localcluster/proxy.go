package main

// Every outgoing HTTP(S) connection of the in-process components (admission
// webhooks, aggregated APIs, kubelet calls for logs/exec/port-forward, the
// API server's pod and service proxy) goes through this proxy on loopback
// (HTTPS_PROXY/HTTP_PROXY of the process). It only ever connects to:
//   - a real pod's port, inside the pod's network namespace, for a Service
//     (name.ns.svc[.cluster.local] or its ClusterIP) backed by a real pod, or
//     a real pod's IP;
// Everything else is refused at once, so nothing ever reaches a network.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

type connectProxy struct {
	l      net.Listener
	runner atomic.Pointer[runner]
	// admitSimulated: answer webhook calls for Services backed only by simulated pods (simwebhook.go).
	admitSimulated bool
}

// startConnectProxy binds the proxy and points the process's proxy variables
// at it; it must run before any component builds an HTTP transport.
func startConnectProxy() (*connectProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cp := &connectProxy{l: l}
	url := "http://" + l.Addr().String()
	for _, key := range []string{"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"} {
		os.Setenv(key, url)
	}
	for _, key := range []string{"NO_PROXY", "no_proxy"} {
		os.Setenv(key, "127.0.0.1,localhost,::1")
	}
	go func() { _ = (&http.Server{Handler: cp}).Serve(l) }()
	return cp, nil
}

func (cp *connectProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	target := req.Host
	if req.Method != http.MethodConnect && req.URL.Host != "" {
		target = req.URL.Host // an absolute-URI request; Host may be the original one
	}
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		host, portStr = target, "80"
		if req.Method == http.MethodConnect {
			portStr = "443"
		}
	}
	port, _ := strconv.Atoi(portStr)
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	conn, err := cp.dial(ctx, host, port)
	cancel()
	if err != nil && req.Method == http.MethodConnect && cp.admitSimulated {
		if r := cp.runner.Load(); r != nil {
			if cert, pod, ok := r.simulatedWebhookCert(host); ok {
				if client, ok := hijackTunnel(w); ok {
					serveSimulatedWebhook(client, cert, host, pod)
				}
				return
			}
		}
	}
	if err != nil {
		klog.V(2).InfoS("proxy: refused", "method", req.Method, "host", req.Host, "url", req.URL.String(), "reason", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if req.Method == http.MethodConnect {
		hj, ok := w.(http.Hijacker)
		if !ok {
			conn.Close()
			http.Error(w, "hijack not supported", http.StatusInternalServerError)
			return
		}
		client, buf, err := hj.Hijack()
		if err != nil {
			conn.Close()
			return
		}
		_, _ = client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		if buf.Reader.Buffered() > 0 {
			pending, _ := buf.Reader.Peek(buf.Reader.Buffered())
			_, _ = conn.Write(pending)
		}
		pipe(client, conn)
		return
	}
	// A plain-HTTP proxy request (absolute URL): send it over conn.
	defer conn.Close()
	out := req.Clone(req.Context())
	out.RequestURI = ""
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }, DisableKeepAlives: true}
	resp, err := tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// hijackTunnel answers a CONNECT with 200 and returns the client's side of the
// tunnel (with whatever it already sent).
func hijackTunnel(w http.ResponseWriter) (net.Conn, bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "hijack not supported", http.StatusInternalServerError)
		return nil, false
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		return nil, false
	}
	_, _ = client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	return &bufferedConn{Conn: client, r: buf.Reader}, true
}

// bufferedConn reads what the hijacked server had buffered before the connection.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// dial maps a destination to a real pod or the kubelet endpoint, or refuses.
func (cp *connectProxy) dial(ctx context.Context, host string, port int) (net.Conn, error) {
	r := cp.runner.Load()
	if r == nil {
		return nil, fmt.Errorf("refused %s:%d: no pod runs for real on this local control plane", host, port)
	}
	if p := r.byIP(host); p != nil {
		return p.dial(ctx, port)
	}
	svc, err := r.serviceFor(host)
	if err != nil {
		return nil, err
	}
	var target *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			target = &svc.Spec.Ports[i]
		}
	}
	if target == nil {
		return nil, fmt.Errorf("refused %s:%d: Service %s/%s has no port %d", host, port, svc.Namespace, svc.Name, port)
	}
	backends := r.serviceBackends(svc)
	if len(backends) == 0 {
		return nil, fmt.Errorf("refused %s:%d: no pod of Service %s/%s runs for real", host, port, svc.Namespace, svc.Name)
	}
	var lastErr error
	for _, p := range backends {
		podPort := int(target.Port)
		switch {
		case target.TargetPort.Type == intstr.String && target.TargetPort.StrVal != "":
			n, ok := p.namedPort(target.TargetPort.StrVal)
			if !ok {
				lastErr = fmt.Errorf("pod %s/%s has no port named %q", p.namespace, p.name, target.TargetPort.StrVal)
				continue
			}
			podPort = n
		case target.TargetPort.IntValue() > 0:
			podPort = target.TargetPort.IntValue()
		}
		conn, err := p.dial(ctx, podPort)
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("Service %s/%s: %w", svc.Namespace, svc.Name, lastErr)
}

// serviceFor finds the Service a host names: name.ns.svc[.cluster.local] or a ClusterIP.
func (r *runner) serviceFor(host string) (*corev1.Service, error) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) >= 3 && parts[2] == "svc" {
		svc, err := r.services.Services(parts[1]).Get(parts[0])
		if err != nil {
			return nil, fmt.Errorf("refused %s: %w", host, err)
		}
		return svc, nil
	}
	if net.ParseIP(host) != nil {
		all, _ := r.services.List(labels.Everything())
		for _, svc := range all {
			if svc.Spec.ClusterIP == host {
				return svc, nil
			}
		}
	}
	return nil, fmt.Errorf("refused %s: not a Service, a node or a pod that runs for real", host)
}
