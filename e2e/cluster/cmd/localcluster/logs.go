package main

// Quiet logs: every component (apiserver, controller-manager, scheduler, etcd,
// kwok, the runner) logs into one file under the data dir; the terminal gets
// one line naming it, and a summary line if the cluster fails. Whatever writes
// to the process's stderr directly (klog's error copies, pflag deprecation
// notices, Go's log package, panics) lands in the same file: fd 2 itself is
// pointed at it.

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

const defaultLogName = "localcluster.log"

// prepareDataDir creates (or resolves) the data dir before anything logs.
func prepareDataDir(flagValue string) (string, error) {
	if flagValue == "" {
		return os.MkdirTemp("", "localcluster-")
	}
	dir, err := filepath.Abs(flagValue)
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o700)
}

// redirectLogs opens the log file (--log-file, else <data-dir>/localcluster.log),
// prints its path once on the terminal's stderr, and sends every log there.
func (c *cluster) redirectLogs() error {
	c.logPath = c.o.logFile
	if c.logPath == "" {
		c.logPath = filepath.Join(c.dataDir, defaultLogName)
	}
	path, err := filepath.Abs(c.logPath)
	if err != nil {
		return err
	}
	c.logPath = path
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	// Keep the terminal for our own two messages, then make fd 2 the log file.
	if saved, err := unix.Dup(int(os.Stderr.Fd())); err == nil {
		unix.CloseOnExec(saved)
		c.userOut = os.NewFile(uintptr(saved), "terminal-stderr")
		if err := unix.Dup2(int(f.Fd()), int(os.Stderr.Fd())); err != nil {
			c.userOut = os.Stderr
		}
	}
	fmt.Fprintf(c.userOut, "localcluster: logs in %s\n", path)
	_ = flag.CommandLine.Set("stderrthreshold", "FATAL")
	klog.LogToStderr(false)
	// Only the INFO stream: klog would write an error line once per severity at or below it.
	klog.SetOutputBySeverity("INFO", f)
	for _, severity := range []string{"WARNING", "ERROR", "FATAL"} {
		klog.SetOutputBySeverity(severity, io.Discard)
	}
	log.SetOutput(f)
	c.logOut = f
	return nil
}
