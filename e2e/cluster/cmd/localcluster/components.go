package main

// The three control-plane components run in-process. Their cobra commands
// (NewAPIServerCommand & co.) cannot be used more than once per process: each
// installs the process signal handler, which panics on a second call. So this
// file does what their RunE does, minus signal handling, logging setup and
// flag printing (klog is configured once by main).

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/pflag"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	cliflag "k8s.io/component-base/cli/flag"

	apiapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiopts "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmopts "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedopts "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

func parseInto(name string, nfs cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	for _, f := range nfs.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", name, err)
	}
	return nil
}

// Each prepare* function builds a component's options and parses its flags;
// the returned function runs the component until ctx is cancelled.
//
// All three must be prepared before any of them runs: building
// kube-controller-manager's flags overrides a feature-gate default
// (WatchListClient), which panics once the process-wide feature gate has been
// added to another component's flag set.

// prepareAPIServer: listener is the already-bound secure-port listener (so
// the port is known without races).
func prepareAPIServer(args []string, listener net.Listener) (func(context.Context) error, error) {
	s := apiopts.NewServerRunOptions()
	if err := parseInto("kube-apiserver", s.Flags(), args); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
			return err
		}
		s.SecureServing.Listener = listener
		completed, err := s.Complete(ctx)
		if err != nil {
			return err
		}
		if errs := completed.Validate(); len(errs) != 0 {
			return utilerrors.NewAggregate(errs)
		}
		return apiapp.Run(ctx, completed)
	}, nil
}

// prepareControllerManager: run it only once the apiserver is healthy: it
// gives up (and exits the process) after waiting 10s for /healthz.
func prepareControllerManager(args []string) (func(context.Context) error, error) {
	s, err := kcmopts.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	known, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	nfs := s.Flags(known, disabled, aliases)
	s.ParsedFlags = &nfs
	if err := parseInto("kube-controller-manager", nfs, args); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if err := s.ComponentGlobalsRegistry.Set(); err != nil {
			return err
		}
		c, err := s.Config(ctx, known, disabled, aliases)
		if err != nil {
			return err
		}
		return kcmapp.Run(ctx, c.Complete())
	}, nil
}

func prepareScheduler(args []string) (func(context.Context) error, error) {
	opts := schedopts.NewOptions()
	if err := parseInto("kube-scheduler", *opts.Flags, args); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
			return err
		}
		cc, sched, err := schedapp.Setup(ctx, opts)
		if err != nil {
			return err
		}
		return schedapp.Run(ctx, cc, sched)
	}, nil
}
