package main

// Probes of a real container, run by localcluster as a kubelet would:
// httpGet and tcpSocket dial the port inside the pod's network namespace
// (whatever `host` says: the pod has only loopback), exec runs through
// `runc exec`, grpc is approximated by a TCP connect.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

// probe runs the startup probe, then liveness and readiness, until ctx ends.
func (c *container) probe(ctx context.Context) {
	if sp := c.spec.StartupProbe; sp != nil {
		if !c.probeLoop(ctx, sp, "startup", func(ok bool) bool { return ok }) {
			return
		}
		c.mu.Lock()
		c.started = true
		c.ready = c.spec.ReadinessProbe == nil
		c.mu.Unlock()
		c.p.changed()
	}
	if lp := c.spec.LivenessProbe; lp != nil {
		go c.probeLoop(ctx, lp, "liveness", func(bool) bool { return false })
	}
	if rp := c.spec.ReadinessProbe; rp != nil {
		c.probeLoop(ctx, rp, "readiness", func(ok bool) bool {
			c.mu.Lock()
			changed := c.ready != ok
			c.ready = ok
			c.mu.Unlock()
			if changed {
				c.p.changed()
			}
			return false
		})
	}
}

// probeLoop probes every period. Each time the result crosses its threshold,
// onResult is told (true after successThreshold successes, false after
// failureThreshold failures) and the loop ends if it returns true. A startup
// or liveness probe that fails kills the container (restarted per policy).
func (c *container) probeLoop(ctx context.Context, pr *corev1.Probe, kind string, onResult func(bool) bool) bool {
	period := seconds(pr.PeriodSeconds, 10)
	timeout := seconds(pr.TimeoutSeconds, 1)
	successes, failures := int32(0), int32(0)
	successThreshold, failureThreshold := max(pr.SuccessThreshold, 1), max(pr.FailureThreshold, 3)
	if kind != "readiness" {
		successThreshold = 1
	}
	if !sleepCtx(ctx, seconds(pr.InitialDelaySeconds, 0)) {
		return false
	}
	for {
		err := c.probeOnce(ctx, pr, timeout)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			successes, failures = successes+1, 0
			if successes == successThreshold && onResult(true) {
				return true
			}
		} else {
			successes, failures = 0, failures+1
			klog.V(2).InfoS("runner: probe failed", "pod", klog.KRef(c.p.namespace, c.p.name), "container", c.spec.Name, "probe", kind, "err", err)
			if failures == failureThreshold {
				if kind != "readiness" {
					klog.InfoS("runner: probe failed, killing container", "pod", klog.KRef(c.p.namespace, c.p.name), "container", c.spec.Name, "probe", kind, "err", err)
					c.kill("KILL", "Error")
					return false
				}
				if onResult(false) {
					return true
				}
			}
		}
		if !sleepCtx(ctx, period) {
			return false
		}
	}
}

func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func (c *container) probeOnce(ctx context.Context, pr *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.Exec != nil:
		cmd := exec.CommandContext(ctx, c.p.r.runcBin, append([]string{"--root", c.p.r.runcRoot, "exec", c.id}, pr.Exec.Command...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("exec %v: %v: %s", pr.Exec.Command, err, strings.TrimSpace(string(out)))
		}
		return nil
	case pr.HTTPGet != nil:
		port, err := c.p.resolvePort(pr.HTTPGet.Port)
		if err != nil {
			return err
		}
		scheme := "http"
		if pr.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := pr.HTTPGet.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		client := &http.Client{Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as the kubelet does
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return c.p.dial(ctx, port)
			},
		}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.34")
		for _, h := range pr.HTTPGet.HTTPHeaders {
			if strings.EqualFold(h.Name, "host") {
				req.Host = h.Value
			} else {
				req.Header.Add(h.Name, h.Value)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil || pr.GRPC != nil:
		var port int
		var err error
		if pr.TCPSocket != nil {
			port, err = c.p.resolvePort(pr.TCPSocket.Port)
		} else {
			port = int(pr.GRPC.Port)
		}
		if err != nil {
			return err
		}
		conn, err := c.p.dial(ctx, port)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return fmt.Errorf("probe has no handler")
}

func (p *realPod) resolvePort(port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	if n, ok := p.namedPort(port.StrVal); ok {
		return n, nil
	}
	return 0, fmt.Errorf("no container port named %q", port.StrVal)
}
