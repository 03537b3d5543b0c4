package main

// A small kubelet API for the API server: container logs, port-forward and
// exec of real pods. The API server reaches it through the CONNECT proxy
// (proxy.go) whatever node it thinks it is calling; it serves HTTPS on
// loopback with the cluster's serving certificate (the API server does not
// verify kubelet certificates unless told to).

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	kubeletremote "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
)

type kubeletServer struct {
	runner atomic.Pointer[runner] // nil: every pod is simulated
	addr   string
	l      net.Listener
}

func (k *kubeletServer) port() int { return k.l.Addr().(*net.TCPAddr).Port }

func startKubelet(certFile, keyFile string) (*kubeletServer, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &kubeletServer{addr: l.Addr().String(), l: l}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", k.logs)
	mux.HandleFunc("/portForward/{ns}/{pod}", k.portForward)
	mux.HandleFunc("/portForward/{ns}/{pod}/{uid}", k.portForward)
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", k.exec)
	mux.HandleFunc("/exec/{ns}/{pod}/{uid}/{container}", k.exec)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ErrorLog: nil}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	return k, nil
}

func (k *kubeletServer) pod(w http.ResponseWriter, req *http.Request) *realPod {
	var p *realPod
	if r := k.runner.Load(); r != nil {
		p = r.byName(req.PathValue("ns"), req.PathValue("pod"))
	}
	if p == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s is not running for real on the local control plane (it is simulated by kwok, or gone): no logs, exec or port-forward", req.PathValue("ns"), req.PathValue("pod")), http.StatusNotFound)
	}
	return p
}

func (p *realPod) containerNamed(name string) *container {
	for _, c := range append(append([]*container{}, p.init...), p.main...) {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

// logs serves a container's log: follow, previous, tailLines, timestamps,
// sinceSeconds, limitBytes.
func (k *kubeletServer) logs(w http.ResponseWriter, req *http.Request) {
	p := k.pod(w, req)
	if p == nil {
		return
	}
	c := p.containerNamed(req.PathValue("container"))
	if c == nil {
		http.Error(w, fmt.Sprintf("container %q not found in pod %s/%s", req.PathValue("container"), p.namespace, p.name), http.StatusNotFound)
		return
	}
	q := req.URL.Query()
	c.mu.Lock()
	restart := c.restartCount
	running := c.running != nil
	done := c.runDone
	c.mu.Unlock()
	if q.Get("previous") == "true" {
		if restart == 0 {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", c.spec.Name, p.name), http.StatusBadRequest)
			return
		}
		restart--
		running = false
	}
	f, err := os.Open(c.logPath(restart))
	if err != nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", c.spec.Name, p.name), http.StatusBadRequest)
		return
	}
	defer f.Close()
	timestamps := q.Get("timestamps") == "true"
	var since time.Time
	if s, err := strconv.Atoi(q.Get("sinceSeconds")); err == nil {
		since = time.Now().Add(-time.Duration(s) * time.Second)
	}
	if t, err := time.Parse(time.RFC3339, q.Get("sinceTime")); err == nil {
		since = t
	}
	limit := int64(-1)
	if n, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil {
		limit = n
	}
	w.Header().Set("Content-Type", "text/plain")
	format := func(line string) (string, bool) {
		ts, rest, ok := strings.Cut(line, " ")
		_, msg, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 {
			return "", false
		}
		if !since.IsZero() {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.Before(since) {
				return "", false
			}
		}
		if timestamps {
			return ts + " " + msg, true
		}
		return msg, true
	}
	write := func(s string) bool {
		if limit >= 0 {
			if limit == 0 {
				return false
			}
			if int64(len(s)) > limit {
				s = s[:limit]
			}
			limit -= int64(len(s))
		}
		_, err := io.WriteString(w, s)
		return err == nil
	}
	br := bufio.NewReader(f)
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			// a partial line stays for the follow loop
			if len(line) > 0 {
				_, _ = f.Seek(-int64(len(line)), io.SeekCurrent)
			}
			break
		}
		if s, ok := format(line); ok {
			lines = append(lines, s)
		}
	}
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	for _, s := range lines {
		if !write(s) {
			return
		}
	}
	if q.Get("follow") != "true" || !running {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	br = bufio.NewReader(f)
	pending := ""
	for {
		line, err := br.ReadString('\n')
		pending += line
		if err == nil {
			if s, ok := format(pending); ok && !write(s) {
				return
			}
			pending = ""
			if flusher != nil {
				flusher.Flush()
			}
			continue
		}
		select {
		case <-req.Context().Done():
			return
		case <-done:
			// drain what the run wrote last, then end
			rest, _ := io.ReadAll(br)
			for _, l := range strings.SplitAfter(pending+string(rest), "\n") {
				if s, ok := format(l); ok && strings.HasSuffix(l, "\n") {
					write(s)
				}
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type podForwarder struct{ p *realPod }

func (f podForwarder) PortForward(ctx context.Context, _ string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	conn, err := f.p.dial(ctx, int(port))
	if err != nil {
		return fmt.Errorf("pod %s/%s port %d: %w", f.p.namespace, f.p.name, port, err)
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); errc <- err }()
	go func() { _, err := io.Copy(stream, conn); errc <- err }()
	return <-errc
}

func (k *kubeletServer) portForward(w http.ResponseWriter, req *http.Request) {
	p := k.pod(w, req)
	if p == nil {
		return
	}
	portforward.ServePortForward(w, req, podForwarder{p}, p.name, p.uid, nil, 4*time.Hour, 30*time.Second, portforward.SupportedProtocols)
}

type podExecutor struct{ p *realPod }

func (e podExecutor) ExecInContainer(ctx context.Context, _ string, _ types.UID, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize, timeout time.Duration) error {
	c := e.p.containerNamed(container)
	if c == nil {
		return fmt.Errorf("container %q not found", container)
	}
	if tty {
		return fmt.Errorf("exec with a TTY is not supported by the local runner")
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	x := exec.CommandContext(ctx, e.p.r.runcBin, append([]string{"--root", e.p.r.runcRoot, "exec", c.id}, cmd...)...)
	x.Stdin, x.Stdout, x.Stderr = in, out, errw
	err := x.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return exitCodeError{ee.ExitCode()}
	}
	return err
}

// exitCodeError carries the exit status back through the exec protocol.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string {
	return fmt.Sprintf("command terminated with exit code %d", e.code)
}
func (e exitCodeError) String() string  { return e.Error() }
func (e exitCodeError) Exited() bool    { return true }
func (e exitCodeError) ExitStatus() int { return e.code }

func (k *kubeletServer) exec(w http.ResponseWriter, req *http.Request) {
	p := k.pod(w, req)
	if p == nil {
		return
	}
	q := req.URL.Query()
	opts := &kubeletremote.Options{
		Stdin: q.Get("input") == "1" || q.Get("stdin") == "true", Stdout: q.Get("output") == "1" || q.Get("stdout") == "true",
		Stderr: q.Get("error") == "1" || q.Get("stderr") == "true", TTY: q.Get("tty") == "1" || q.Get("tty") == "true",
	}
	kubeletremote.ServeExec(w, req, podExecutor{p}, p.name, p.uid, req.PathValue("container"), q["command"], opts,
		4*time.Hour, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
	klog.V(2).InfoS("runner: exec", "pod", klog.KRef(p.namespace, p.name), "command", q["command"])
}
