package main

// Admission webhooks served by simulated pods (--simulated-webhooks=admit).
//
// kwok reports a simulated pod Ready although nothing runs, so a webhook whose
// Service is backed only by simulated pods would fail every call — with
// failurePolicy Fail it rejects every object it matches (ingress-nginx's
// webhook rejects every Ingress). With --simulated-webhooks=admit, localcluster
// answers such a call in the simulated pod's place, the way kwok answers its
// probes: it terminates TLS with the serving certificate the pod mounts (a
// Secret volume holding a certificate valid for the Service's DNS name, which is
// what the webhook configuration's caBundle trusts) and returns "allowed" with a
// warning naming the simulation; a mutating webhook gets no patch. Nothing is
// validated: the verdict of the real server is not known. Webhooks with a real
// pod behind them are always called for real; Services with no Ready simulated
// pod, or whose pods mount no certificate for the Service, are refused as before.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

const (
	simulatedWebhooksAdmit  = "admit"
	simulatedWebhooksRefuse = "refuse"
)

// simulatedWebhookCert returns the serving certificate of a Ready simulated pod
// behind the Service `host` names (svc.ns.svc[.cluster.local]), or false when
// the Service has a real pod, no Ready simulated pod, or no such certificate.
func (r *runner) simulatedWebhookCert(host string) (*tls.Certificate, string, bool) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) < 3 || parts[2] != "svc" {
		return nil, "", false
	}
	svc, err := r.services.Services(parts[1]).Get(parts[0])
	if err != nil || len(svc.Spec.Selector) == 0 || len(r.serviceBackends(svc)) > 0 {
		return nil, "", false
	}
	pods, err := r.pods.Pods(svc.Namespace).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return nil, "", false
	}
	for _, pod := range pods {
		if pod.Annotations[annRuntime] != runtimeKwok || pod.DeletionTimestamp != nil || !podReady(pod) {
			continue
		}
		for _, secret := range podSecretNames(pod) {
			if cert, ok := r.servingCertIn(pod.Namespace, secret, host); ok {
				return cert, pod.Namespace + "/" + pod.Name, true
			}
		}
	}
	return nil, "", false
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podSecretNames lists the Secrets a pod mounts (secret and projected volumes).
func podSecretNames(pod *corev1.Pod) []string {
	var names []string
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			names = append(names, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					names = append(names, s.Secret.Name)
				}
			}
		}
	}
	return names
}

// servingCertIn finds, among a Secret's values, a certificate and key that
// pair up and whose certificate is valid for host.
func (r *runner) servingCertIn(namespace, name, host string) (*tls.Certificate, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	secret, err := r.cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, false
	}
	var certs, keys [][]byte
	for _, value := range secret.Data {
		text := string(value)
		switch {
		case strings.Contains(text, "-----BEGIN CERTIFICATE-----"):
			certs = append(certs, value)
		case strings.Contains(text, "PRIVATE KEY-----"):
			keys = append(keys, value)
		}
	}
	for _, c := range certs {
		for _, k := range keys {
			pair, err := tls.X509KeyPair(c, k)
			if err != nil || pair.Leaf == nil || pair.Leaf.VerifyHostname(host) != nil {
				continue
			}
			return &pair, true
		}
	}
	return nil, false
}

// serveSimulatedWebhook answers the webhook calls of one hijacked CONNECT
// tunnel: TLS with the pod's certificate, every AdmissionReview allowed.
func serveSimulatedWebhook(conn net.Conn, cert *tls.Certificate, host, pod string) {
	listener := &oneConnListener{
		conn:   tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*cert}, NextProtos: []string{"http/1.1"}}),
		closed: make(chan struct{}),
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		response, what, err := admitAll(body, host, pod)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		klog.InfoS("simulated webhook: admitted without a check", "service", host, "pod", pod, "request", req.URL.Path, "object", what)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(response)
	})
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second,
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateClosed || state == http.StateHijacked {
				listener.close()
			}
		}}
	_ = server.Serve(listener)
}

// admitAll turns an AdmissionReview request into its "allowed" response (same
// apiVersion, same uid), with a warning the client sees.
func admitAll(body []byte, host, pod string) ([]byte, string, error) {
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Request    *struct {
			UID       string                `json:"uid"`
			Kind      struct{ Kind string } `json:"kind"`
			Namespace string                `json:"namespace"`
			Name      string                `json:"name"`
			Operation string                `json:"operation"`
		} `json:"request"`
	}
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		return nil, "", fmt.Errorf("not an AdmissionReview request: %v", err)
	}
	what := fmt.Sprintf("%s %s %s/%s", review.Request.Operation, review.Request.Kind.Kind, review.Request.Namespace, review.Request.Name)
	out, err := json.Marshal(map[string]any{
		"apiVersion": review.APIVersion,
		"kind":       "AdmissionReview",
		"response": map[string]any{
			"uid":     review.Request.UID,
			"allowed": true,
			"warnings": []string{fmt.Sprintf(
				"localcluster: webhook %s is served by simulated pod %s; admitted without a check (--simulated-webhooks=admit)", host, pod)},
		},
	})
	return out, what, err
}

// oneConnListener serves a single, already accepted connection; Accept then
// blocks until that connection is closed, so http.Server.Serve returns with it.
type oneConnListener struct {
	conn     net.Conn
	accepted bool
	once     sync.Once
	closed   chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.accepted {
		l.accepted = true
		return l.conn, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}
func (l *oneConnListener) close()         { l.once.Do(func() { close(l.closed) }) }
func (l *oneConnListener) Close() error   { l.close(); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
