package main

// One container of a real pod: each run is `runc run` in the foreground (its
// exit status is the container's), with stdout/stderr written to a log file
// per run, probes while it runs, and a fresh overlayfs root each time.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

type container struct {
	p     *realPod
	spec  corev1.Container
	id    string
	image *image

	mu           sync.Mutex
	restartCount int32
	state        corev1.ContainerState
	lastState    corev1.ContainerState
	ready        bool
	started      bool
	running      *exec.Cmd
	runDone      chan struct{}  // closed when the current run ended
	killReason   string         // why we killed the current run (liveness, ...)
	stopGrace    *time.Duration // set once the pod terminates: a run starting later is stopped at once
}

func newContainer(p *realPod, spec corev1.Container) *container {
	return &container{
		p: p, spec: spec, id: containerID(p.namespace, p.name, spec.Name),
		state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
	}
}

func (c *container) logPath(restart int32) string {
	return filepath.Join(c.p.dir, fmt.Sprintf("%s-%d.log", c.spec.Name, restart))
}

func (c *container) bundle() string { return filepath.Join(c.p.dir, "bundles", c.spec.Name) }

// supervise runs the container until it ends for good (per policy) or the pod terminates.
func (c *container) supervise(policy corev1.RestartPolicy) {
	backoff := backoffInitial
	for {
		started := time.Now()
		code := c.runOnce()
		if c.p.ctx.Err() != nil {
			return
		}
		if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && code == 0) {
			return
		}
		if time.Since(started) > backoffReset {
			backoff = backoffInitial
		}
		c.waitBackoff(&backoff)
		if c.p.ctx.Err() != nil {
			return
		}
	}
}

// waitBackoff shows CrashLoopBackOff for the back-off, then counts a restart.
func (c *container) waitBackoff(backoff *time.Duration) {
	c.mu.Lock()
	c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  "CrashLoopBackOff",
		Message: fmt.Sprintf("back-off %v restarting failed container=%s pod=%s", *backoff, c.spec.Name, c.p.name),
	}}
	c.mu.Unlock()
	c.p.changed()
	sleepCtx(c.p.ctx, *backoff)
	*backoff = min(2**backoff, backoffMax)
	c.mu.Lock()
	c.restartCount++
	c.mu.Unlock()
}

// runOnce runs the container to its end and returns its exit code.
func (c *container) runOnce() int {
	if c.p.ctx.Err() != nil {
		return -1
	}
	c.mu.Lock()
	restart := c.restartCount
	c.mu.Unlock()
	startedAt := metav1.Now()
	fail := func(reason string, err error) int {
		klog.ErrorS(err, "runner: container", "pod", klog.KRef(c.p.namespace, c.p.name), "container", c.spec.Name)
		c.mu.Lock()
		c.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 128, Reason: reason, Message: err.Error(), StartedAt: startedAt, FinishedAt: metav1.Now(),
		}}
		c.lastState = c.state
		c.mu.Unlock()
		c.p.changed()
		return 128
	}
	rootfs, cleanup, err := c.prepareRoot()
	if err != nil {
		return fail("StartError", err)
	}
	defer cleanup()
	if err := c.writeSpec(rootfs); err != nil {
		return fail("CreateContainerConfigError", err)
	}
	logFile, err := os.OpenFile(c.logPath(restart), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fail("StartError", err)
	}
	defer logFile.Close()
	lw := &logWriter{f: logFile}

	_ = exec.Command(c.p.r.runcBin, "--root", c.p.r.runcRoot, "delete", "--force", c.id).Run()
	cmd := exec.Command(c.p.r.runcBin, "--root", c.p.r.runcRoot, "run", "--bundle", c.bundle(), c.id)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fail("StartError", err)
	}
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); lw.copyLines("stdout", stdout) }()
	go func() { defer copies.Done(); lw.copyLines("stderr", stderr) }()

	runDone := make(chan struct{})
	probeCtx, stopProbes := context.WithCancel(c.p.ctx)
	c.mu.Lock()
	c.running, c.runDone, c.killReason = cmd, runDone, ""
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
	c.started = c.spec.StartupProbe == nil
	c.ready = c.spec.ReadinessProbe == nil && c.started && !c.isInit()
	stopGrace := c.stopGrace
	c.mu.Unlock()
	c.p.changed()
	if stopGrace != nil {
		// The pod began terminating while this run was starting: stop it like the others.
		go c.stop(*stopGrace)
	}
	if !c.isInit() {
		go c.probe(probeCtx)
	}

	copies.Wait()
	werr := cmd.Wait()
	stopProbes()
	code := 0
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else {
			code = 128
		}
	}
	c.mu.Lock()
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	if c.killReason != "" {
		reason = c.killReason
	}
	term := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: reason, StartedAt: startedAt, FinishedAt: metav1.Now(),
		ContainerID: "runc://" + c.id,
	}}
	c.state, c.lastState = term, term
	c.ready, c.started, c.running = false, false, nil
	close(runDone)
	c.mu.Unlock()
	_ = exec.Command(c.p.r.runcBin, "--root", c.p.r.runcRoot, "delete", "--force", c.id).Run()
	klog.InfoS("runner: container exited", "pod", klog.KRef(c.p.namespace, c.p.name), "container", c.spec.Name, "exitCode", code, "reason", reason)
	c.p.changed()
	return code
}

func (c *container) isInit() bool {
	for _, ic := range c.p.init {
		if ic == c {
			return true
		}
	}
	return false
}

// kill signals the current run (if any) through runc.
func (c *container) kill(signal, reason string) {
	c.mu.Lock()
	if c.running == nil {
		c.mu.Unlock()
		return
	}
	if reason != "" {
		c.killReason = reason
	}
	c.mu.Unlock()
	args := []string{"--root", c.p.r.runcRoot, "kill"}
	if c.p.r.cgroups {
		args = append(args, "--all") // every process of the container (needs its cgroup)
	}
	args = append(args, c.id, signal)
	// Right after `runc run` starts, the container may not exist yet: retry while the run lasts.
	for attempt := 0; ; attempt++ {
		out, err := exec.Command(c.p.r.runcBin, args...).CombinedOutput()
		if err == nil {
			return
		}
		c.mu.Lock()
		gone := c.running == nil
		c.mu.Unlock()
		if gone || attempt == 50 {
			klog.V(1).InfoS("runner: runc kill", "container", c.id, "signal", signal, "err", err, "output", string(out))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the current run: SIGTERM, then SIGKILL after grace.
func (c *container) stop(grace time.Duration) {
	c.mu.Lock()
	c.stopGrace = &grace
	done := c.runDone
	running := c.running != nil
	c.mu.Unlock()
	if !running || done == nil {
		return
	}
	c.kill("TERM", "")
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	c.kill("KILL", "")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.mu.Lock()
		if c.running != nil && c.running.Process != nil {
			_ = c.running.Process.Kill()
		}
		c.mu.Unlock()
		<-done
	}
}

// logWriter writes "<RFC3339Nano> <stream> <line>" lines (the CRI log format
// minus the partial flag), so kubectl logs can filter and add timestamps.
type logWriter struct {
	mu sync.Mutex
	f  *os.File
}

func (w *logWriter) copyLines(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line += "\n"
			}
			w.mu.Lock()
			_, _ = fmt.Fprintf(w.f, "%s %s %s", time.Now().UTC().Format(time.RFC3339Nano), stream, line)
			w.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}
