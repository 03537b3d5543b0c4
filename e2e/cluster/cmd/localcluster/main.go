// Command localcluster runs a throw-away Kubernetes control plane for tests:
// embedded etcd, kube-apiserver, kube-controller-manager and kube-scheduler in
// one process, plus kwok (child process) simulating nodes and pods.
//
// It is a TEST cluster: insecure shortcuts (no fsync, every component in
// system:masters, fake nodes) make it unsuitable for anything else.
package main

import (
	"context"
	_ "embed"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/grpclog"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// kwokVersionLabel is only used for the fake nodes' containerRuntimeVersion.
const kwokVersionLabel = "v0.8.0"

const defaultControllers = "namespace-controller,garbage-collector-controller," +
	"deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller," +
	"job-controller,cronjob-controller,ttl-after-finished-controller," +
	"endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller," +
	"serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller," +
	"clusterrole-aggregation-controller,disruption-controller,pod-garbage-collector-controller," +
	"replicationcontroller-controller,persistentvolume-binder-controller," +
	"persistentvolumeclaim-protection-controller,persistentvolume-protection-controller"

type options struct {
	dataDir           string
	keepData          bool
	kubeconfig        string
	nodes             int
	nodeLabels        string
	port              int
	readyFile         string
	exitOnStdinClose  bool
	gatewayCRDs       string
	gatewayVersion    string
	noGateway         bool
	admissionWebhooks bool
	simulatedWebhooks string
	kwokBin           string
	controllers       string
	logFile           string
	etcdLogLevel      string
	readyTimeout      time.Duration
	apiserverArgs     string
	controllerMgrArgs string
	schedulerArgs     string
	runtime           string
	imageStore        string
	runcBin           string
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func main() {
	var o options
	fs := flag.CommandLine
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data, certificates and component kubeconfigs (default: a new temp dir); removed on exit unless --keep-data")
	fs.BoolVar(&o.keepData, "keep-data", false, "do not remove --data-dir on exit")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "where to write the admin kubeconfig (required)")
	fs.IntVar(&o.nodes, "nodes", 2, "number of nodes kwok-node-0..N-1 (kwok keeps them Ready; real pods run on any of them)")
	fs.StringVar(&o.nodeLabels, "node-labels", "agentpool=agentpool", "extra labels for every node, k=v,k2=v2 (the default matches the samples' nodeSelector)")
	fs.IntVar(&o.port, "port", 0, "kube-apiserver secure port on 127.0.0.1 (0 = a free port)")
	fs.StringVar(&o.readyFile, "ready-file", "", "file written (with the kubeconfig path) once the cluster is ready")
	fs.BoolVar(&o.exitOnStdinClose, "exit-on-stdin-close", false, "shut down when stdin reaches EOF (parent died)")
	fs.StringVar(&o.gatewayCRDs, "gateway-api-crds", "", "directory of Gateway API CRD YAML (default: config/crd/standard of sigs.k8s.io/gateway-api@<--gateway-api-version> in the Go module cache)")
	fs.StringVar(&o.gatewayVersion, "gateway-api-version", "v1.5.1", "sigs.k8s.io/gateway-api module version whose standard CRDs are installed")
	fs.BoolVar(&o.noGateway, "no-gateway-api", false, "do not install Gateway API CRDs")
	fs.BoolVar(&o.admissionWebhooks, "admission-webhooks", true, "call admission webhooks (real pods serve them; see --simulated-webhooks for simulated ones); --admission-webhooks=false stores webhook configurations without calling them")
	fs.StringVar(&o.simulatedWebhooks, "simulated-webhooks", simulatedWebhooksAdmit, "webhooks whose Service has only simulated pods: admit (localcluster answers allowed, with a warning, using the serving certificate the pod mounts) or refuse (the call fails; the webhook's failurePolicy decides)")
	fs.StringVar(&o.kwokBin, "kwok-bin", "", "kwok binary (default: 'kwok' next to this executable, then $PATH)")
	fs.StringVar(&o.controllers, "controllers", defaultControllers, "kube-controller-manager --controllers")
	fs.StringVar(&o.logFile, "log-file", "", "write all component logs to this file (default: <data-dir>/localcluster.log)")
	fs.StringVar(&o.etcdLogLevel, "etcd-log-level", "error", "embedded etcd log level")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 3*time.Minute, "give up if the cluster is not ready within this time")
	fs.StringVar(&o.apiserverArgs, "apiserver-args", "", "extra kube-apiserver flags (space separated), appended last")
	fs.StringVar(&o.controllerMgrArgs, "controller-manager-args", "", "extra kube-controller-manager flags (space separated), appended last")
	fs.StringVar(&o.schedulerArgs, "scheduler-args", "", "extra kube-scheduler flags (space separated), appended last")
	fs.StringVar(&o.runtime, "runtime", "auto", "how pods run: auto (pods whose images are all in --image-store run for real under runc when runc is installed; the others are simulated by kwok), runc (the same, but fail without runc), kwok (every pod simulated)")
	fs.StringVar(&o.imageStore, "image-store", defaultImageStore(), "OCI image layout whose tags run for real ($MESH_IMAGE_STORE, default ~/.cache/mesh-operator/images)")
	fs.StringVar(&o.runcBin, "runc", "runc", "runc binary for real pods")
	klog.InitFlags(fs) // --v, --vmodule, ...
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: %s --kubeconfig PATH [flags]\n\nA local TEST Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,\nkube-scheduler in-process; kwok for fake nodes). Prints 'LOCALCLUSTER READY kubeconfig=<path>' on stdout when ready.\n\nFlags:\n", os.Args[0])
		fs.PrintDefaults()
	}
	_ = fs.Set("v", "0")
	flag.Parse()
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", fs.Args())
		os.Exit(2)
	}
	if o.kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig is required")
		fs.Usage()
		os.Exit(2)
	}
	switch o.runtime {
	case "auto", "runc", "kwok":
	default:
		fmt.Fprintln(os.Stderr, "--runtime must be auto, runc or kwok")
		os.Exit(2)
	}
	if o.nodes < 0 || o.nodes > 250*250 {
		fmt.Fprintln(os.Stderr, "--nodes out of range")
		os.Exit(2)
	}

	os.Exit(run(o))
}

// cluster holds everything that must be torn down.
type cluster struct {
	o        options
	dataDir  string
	etcd     *embed.Etcd
	kwok     *exec.Cmd
	kwokDone chan struct{}
	cancel   context.CancelFunc
	fatal    chan error
	apiDone  chan struct{}
	logOut   io.Writer
	logPath  string
	proxy    *connectProxy
	kubelet  *kubeletServer
	runner   *runner
	// userOut is the terminal's stderr: only the log path and a failure summary go there.
	userOut io.Writer

	removeOnce sync.Once
}

// disabledAdmission lists the admission plugins to turn off: the webhook plugins only with
// --admission-webhooks=false (webhook configurations are then still stored and validated).
func disabledAdmission(webhooks bool) string {
	plugins := "TaintNodesByCondition"
	if !webhooks {
		plugins += ",ValidatingAdmissionWebhook,MutatingAdmissionWebhook"
	}
	return "--disable-admission-plugins=" + plugins
}

func run(o options) int {
	start := time.Now()
	c := &cluster{o: o, logOut: os.Stderr, userOut: os.Stderr}
	// Before any component builds an HTTP transport (they read the proxy variables once).
	proxy, err := startConnectProxy()
	if err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: proxy: %v\n", err)
		return 1
	}
	c.proxy = proxy
	switch o.simulatedWebhooks {
	case simulatedWebhooksAdmit:
		proxy.admitSimulated = true
	case simulatedWebhooksRefuse:
	default:
		fmt.Fprintf(os.Stderr, "localcluster: --simulated-webhooks must be admit or refuse, not %q\n", o.simulatedWebhooks)
		return 1
	}

	if c.dataDir, err = prepareDataDir(o.dataDir); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: data dir: %v\n", err)
		return 1
	}
	if err := c.redirectLogs(); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		c.removeData()
		return 1
	}

	// gRPC (apiserver -> etcd) warns about every cancelled dial; keep only
	// its errors unless -v>=2.
	grpcWarn := io.Discard
	if klog.V(2).Enabled() {
		grpcWarn = c.logOut
	}
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, grpcWarn, c.logOut))

	// Everything the components log goes through klog (stderr or --log-file);
	// stdout is reserved for the single READY line.
	//
	// One goroutine turns the first stop request (signal, stdin EOF) or
	// component failure into closing `down`; start-up and the ready wait both
	// watch `down`, so no request can be lost between them.
	fatal := make(chan error, 8)
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if o.exitOnStdinClose {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			klog.Info("stdin closed, shutting down")
			stop <- syscall.SIGTERM
		}()
	}
	down := make(chan struct{})
	var downErr error // nil: stop request; else the component failure
	go func() {
		select {
		case s := <-stop:
			klog.InfoS("shutting down", "signal", s)
		case err := <-fatal:
			downErr = err
		}
		close(down)
		// A second signal during shutdown exits at once.
		<-stop
		os.Exit(1)
	}()

	// A component that gives up calls klog.Fatal / klog.FlushAndExit, which
	// exit through klog.OsExit: still remove the data dir (kwok dies with us
	// through its parent-death signal).
	klog.OsExit = func(code int) {
		c.removeData()
		os.Exit(code)
	}

	c.fatal = fatal
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	exitCode := 0
	if err := c.start(ctx, start, down); err != nil {
		select {
		case <-down:
			if downErr != nil {
				klog.ErrorS(downErr, "component failed before the cluster was ready")
				fmt.Fprintf(c.userOut, "localcluster failed: %v (log: %s)\n", downErr, c.logPath)
				exitCode = 1
			}
		default:
			klog.ErrorS(err, "localcluster failed")
			fmt.Fprintf(c.userOut, "localcluster failed: %v (log: %s)\n", err, c.logPath)
			exitCode = 1
		}
	} else {
		<-down
		if downErr != nil {
			klog.ErrorS(downErr, "component failed, shutting down")
			fmt.Fprintf(c.userOut, "localcluster failed: %v (log: %s)\n", downErr, c.logPath)
			exitCode = 1
		}
	}
	c.shutdown()
	return exitCode
}

func (c *cluster) start(ctx context.Context, start time.Time, down <-chan struct{}) error {
	o := c.o
	fatal := c.fatal
	// Abort the start-up on a stop request, a failure, or the timeout.
	startCtx, startCancel := context.WithTimeout(ctx, o.readyTimeout)
	defer startCancel()
	go func() {
		select {
		case <-down:
			startCancel()
		case <-startCtx.Done():
		}
	}()
	wrap := func(err error) error {
		select {
		case <-down:
			return errors.New("interrupted")
		default:
		}
		if startCtx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("not ready within %v: %w", o.readyTimeout, err)
		}
		return err
	}

	// --- certificates ----------------------------------------------------
	klog.InfoS("data dir", "path", c.dataDir)
	klog.InfoS("component proxy (webhooks, aggregated APIs, pod proxy) listening", "addr", c.proxy.l.Addr().String())
	kubeconfigPath, err := filepath.Abs(o.kubeconfig)
	if err != nil {
		return err
	}
	extraLabels, err := parseLabels(o.nodeLabels)
	if err != nil {
		return err
	}

	// Gateway API CRDs are read (and, if needed, downloaded) concurrently.
	type crdResult struct {
		dir  string
		crds []*apiextv1.CustomResourceDefinition
		err  error
	}
	crdCh := make(chan crdResult, 1)
	if !o.noGateway {
		go func() {
			r := crdResult{dir: o.gatewayCRDs}
			if r.dir == "" {
				r.dir, r.err = resolveGatewayCRDDir(o.gatewayVersion)
			}
			if r.err == nil {
				r.crds, r.err = loadCRDs(r.dir)
			}
			crdCh <- r
		}()
	}

	kwokBin := ""
	if o.nodes > 0 {
		if kwokBin, err = findKwok(o.kwokBin); err != nil {
			return err
		}
	}

	pkiDir := filepath.Join(c.dataDir, "pki")
	p, err := generatePKI(pkiDir, []clientIdentity{
		{name: "admin", user: "admin", groups: []string{"system:masters"}},
		{name: "kube-controller-manager", user: "system:kube-controller-manager", groups: []string{"system:masters"}},
		{name: "kube-scheduler", user: "system:kube-scheduler", groups: []string{"system:masters"}},
		{name: "kwok", user: "kwok-controller", groups: []string{"system:masters"}},
	})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}

	// --- etcd -------------------------------------------------------------
	c.etcd, err = startEtcdLogged(filepath.Join(c.dataDir, "etcd"), o, c.logOut)
	if err != nil {
		return err
	}
	etcdURL := c.etcd.Clients[0].Addr().String()
	klog.InfoS("etcd ready", "url", etcdURL, "elapsed", time.Since(start).Round(time.Millisecond))

	// --- kube-apiserver -----------------------------------------------------
	listener, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w", o.port, err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	server := fmt.Sprintf("https://127.0.0.1:%d", port)

	kubeconfigs := map[string]string{}
	for _, name := range []string{"admin", "kube-controller-manager", "kube-scheduler", "kwok"} {
		data, err := p.kubeconfig(server, name)
		if err != nil {
			return err
		}
		path := filepath.Join(c.dataDir, name+".kubeconfig")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
		kubeconfigs[name] = path
	}
	adminData, _ := os.ReadFile(kubeconfigs["admin"])
	if err := os.MkdirAll(filepath.Dir(kubeconfigPath), 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(kubeconfigPath, adminData, 0o600); err != nil {
		return err
	}

	apiArgs := []string{
		"--etcd-servers=http://" + etcdURL,
		"--etcd-prefix=/registry",
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + pkiDir,
		"--tls-cert-file=" + p.serving.CertFile,
		"--tls-private-key-file=" + p.serving.KeyFile,
		"--client-ca-file=" + p.clientCA.CertFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAKeyFile,
		"--service-account-signing-key-file=" + p.SAKeyFile,
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-node-port-range=30000-32767",
		"--allow-privileged=true",
		// ServiceAccount admission is in the default set; NodeRestriction is
		// added as on real clusters.
		"--enable-admission-plugins=NodeRestriction",
		// TaintNodesByCondition taints new Nodes node.kubernetes.io/not-ready
		// and relies on node-lifecycle-controller to lift it; fake nodes are
		// Ready from the start, so keep them untainted.
		disabledAdmission(o.admissionWebhooks),
		// The apiserver's own Endpoints/EndpointSlice for the `kubernetes`
		// Service cannot hold a loopback address; skip that reconciler.
		"--endpoint-reconciler-type=none",
		// Kubelet calls (logs, exec, port-forward) go to localcluster's kubelet
		// endpoint on loopback, named by each node's InternalDNS address.
		"--kubelet-preferred-address-types=InternalDNS",
		// Faster startup and less memory for a test cluster.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--enable-garbage-collector=true",
		"--event-ttl=30m",
		"--storage-media-type=application/vnd.kubernetes.protobuf",
	}
	apiArgs = append(apiArgs, strings.Fields(o.apiserverArgs)...)
	// Component flags are all parsed before anything runs (see components.go).
	kcmArgs := []string{
		"--kubeconfig=" + kubeconfigs["kube-controller-manager"],
		"--authentication-kubeconfig=" + kubeconfigs["kube-controller-manager"],
		"--authorization-kubeconfig=" + kubeconfigs["kube-controller-manager"],
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=" + o.controllers,
		"--service-account-private-key-file=" + p.SAKeyFile,
		"--root-ca-file=" + p.servingCA.CertFile,
		"--use-service-account-credentials=false",
		"--cluster-name=localcluster",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		// Converge quickly in tests.
		"--concurrent-gc-syncs=20",
		"--concurrent-namespace-syncs=10",
		"--namespace-sync-period=30s",
	}
	kcmArgs = append(kcmArgs, strings.Fields(o.controllerMgrArgs)...)
	schedArgs := []string{
		"--kubeconfig=" + kubeconfigs["kube-scheduler"],
		"--authentication-kubeconfig=" + kubeconfigs["kube-scheduler"],
		"--authorization-kubeconfig=" + kubeconfigs["kube-scheduler"],
		"--leader-elect=false",
		"--secure-port=0",
	}
	schedArgs = append(schedArgs, strings.Fields(o.schedulerArgs)...)
	runKCM, err := prepareControllerManager(kcmArgs)
	if err != nil {
		return err
	}
	runSched, err := prepareScheduler(schedArgs)
	if err != nil {
		return err
	}
	runAPI, err := prepareAPIServer(apiArgs, listener)
	if err != nil {
		return err
	}

	c.apiDone = make(chan struct{})
	go func() {
		defer close(c.apiDone)
		if err := runAPI(ctx); err != nil && ctx.Err() == nil {
			fatal <- fmt.Errorf("kube-apiserver: %w", err)
		} else if ctx.Err() == nil {
			fatal <- errors.New("kube-apiserver exited")
		}
	}()

	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 100, 200
	restCfg.UserAgent = "localcluster"
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	ext, err := apiextclient.NewForConfig(restCfg)
	if err != nil {
		return err
	}

	var lastErr error
	err = poll(startCtx, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			lastErr = err
			return false, nil
		}
		return strings.TrimSpace(string(body)) == "ok", nil
	})
	if err != nil {
		return wrap(fmt.Errorf("kube-apiserver /readyz: %v (last: %v)", err, lastErr))
	}
	klog.InfoS("kube-apiserver ready", "server", server, "elapsed", time.Since(start).Round(time.Millisecond))

	// --- controller-manager, scheduler, kwok, nodes, CRDs (concurrently) ---
	go func() {
		if err := runKCM(ctx); err != nil && ctx.Err() == nil {
			fatal <- fmt.Errorf("kube-controller-manager: %w", err)
		}
	}()
	go func() {
		if err := runSched(ctx); err != nil && ctx.Err() == nil {
			fatal <- fmt.Errorf("kube-scheduler: %w", err)
		}
	}()

	factory := informers.NewSharedInformerFactory(cs, 0)
	startProvisioner(ctx, cs, factory, c.dataDir)
	if c.kubelet, err = startKubelet(p.serving.CertFile, p.serving.KeyFile); err != nil {
		return err
	}
	if err := c.startRunner(cs, factory, port); err != nil {
		return err
	}
	factory.Start(ctx.Done())

	if o.nodes > 0 {
		if err := c.startKwok(kwokBin, kubeconfigs["kwok"], fatal); err != nil {
			return err
		}
	}
	var crds []*apiextv1.CustomResourceDefinition
	if !o.noGateway {
		r := <-crdCh
		if r.err != nil {
			return r.err
		}
		crds = r.crds
		klog.InfoS("applying Gateway API CRDs", "dir", r.dir, "count", len(crds))
	}
	istioCRDs, ierr := loadIstioCRDs() // istio.go
	if ierr != nil {
		return ierr
	}
	crds = append(crds, istioCRDs...)
	// Nodes and CRDs are created concurrently (CRDs are large: ~150ms each).
	errs := make(chan error, 2+len(crds))
	go func() {
		errs <- createNodes(startCtx, cs, o.nodes, extraLabels, version.Get().GitVersion, c.kubelet.port())
	}()
	go func() { errs <- createStorageClass(startCtx, cs) }()
	var crdNames []string
	for _, crd := range crds {
		crdNames = append(crdNames, crd.Name)
		go func() { errs <- applyCRD(startCtx, ext, crd) }()
	}
	for i := 0; i < 2+len(crds); i++ {
		if err := <-errs; err != nil {
			return wrap(err)
		}
	}

	klog.InfoS("nodes and CRDs created", "elapsed", time.Since(start).Round(time.Millisecond))

	// --- readiness ---------------------------------------------------------
	var crdsAt, nodesAt, saAt time.Duration // when each condition was first met
	err = poll(startCtx, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		if crdsAt == 0 {
			if ok, err := crdsEstablished(ctx, ext, crdNames); !ok {
				lastErr = fmt.Errorf("gateway API CRDs not established yet (%v)", err)
				return false, nil
			}
			crdsAt = time.Since(start)
		}
		if nodesAt == 0 {
			if ok, err := nodesReady(ctx, cs, o.nodes); !ok {
				lastErr = fmt.Errorf("nodes not ready yet (%v)", err)
				return false, nil
			}
			nodesAt = time.Since(start)
		}
		if saAt == 0 {
			if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
				if !apierrors.IsNotFound(err) {
					lastErr = err
				} else {
					lastErr = errors.New("default/default ServiceAccount does not exist yet")
				}
				return false, nil
			}
			saAt = time.Since(start)
		}
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || strings.TrimSpace(string(body)) != "ok" {
			lastErr = fmt.Errorf("/readyz: %v", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return wrap(fmt.Errorf("%v: %v", err, lastErr))
	}

	if o.readyFile != "" {
		if err := writeFileAtomic(o.readyFile, []byte(kubeconfigPath+"\n"), 0o644); err != nil {
			return err
		}
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	klog.InfoS("cluster ready", "elapsed", ms(time.Since(start)), "crdsEstablished", ms(crdsAt), "nodesReady", ms(nodesAt), "defaultServiceAccount", ms(saAt), "kubeconfig", kubeconfigPath)
	fmt.Fprintf(os.Stdout, "LOCALCLUSTER READY kubeconfig=%s\n", kubeconfigPath)
	return nil
}

func startEtcdLogged(dir string, o options, logOut io.Writer) (*embed.Etcd, error) {
	e, _, err := startEtcd(dir, o.etcdLogLevel, logOut)
	return e, err
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func findKwok(flagValue string) (string, error) {
	if flagValue != "" {
		p, err := exec.LookPath(flagValue)
		if err != nil {
			return "", fmt.Errorf("--kwok-bin: %w", err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		cand := filepath.Join(filepath.Dir(exe), "kwok")
		if st, err := os.Stat(cand); err == nil && !st.IsDir() {
			return cand, nil
		}
	}
	if p, err := exec.LookPath("kwok"); err == nil {
		return p, nil
	}
	return "", errors.New("kwok binary not found next to localcluster nor on $PATH (build it with e2e/cluster/build.sh, or pass --kwok-bin)")
}

func (c *cluster) startKwok(bin, kubeconfig string, fatal chan error) error {
	dir := filepath.Join(c.dataDir, "kwok")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "stages.yaml")
	if err := os.WriteFile(cfg, kwokStagesFor(c.runner != nil), 0o644); err != nil {
		return err
	}
	logLevel := "WARN"
	if klog.V(2).Enabled() {
		logLevel = "INFO"
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+kubeconfig,
		"--config="+cfg,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"="+kwokNodeValue,
		"--cidr=10.244.0.0/16",
		"--node-ip=10.240.0.1",
		"--node-lease-duration-seconds=40",
		"--v="+logLevel,
	)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir) // kwok reads ~/.kwok/kwok.yaml by default
	cmd.Stdin = nil
	cmd.Stdout = c.logOut
	cmd.Stderr = c.logOut
	// If localcluster dies without cleaning up, the kernel kills kwok.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.kwokDone = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the OS *thread* that started kwok ends, not the process, and
		// the runner ends threads it moved into pod network namespaces. Kwok is started from
		// a thread locked to this goroutine, which lives exactly as long as kwok does.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		close(c.kwokDone)
		fatal <- fmt.Errorf("kwok exited: %v", err)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start kwok %s: %w", bin, err)
	}
	c.kwok = cmd
	klog.InfoS("kwok started", "pid", cmd.Process.Pid, "bin", bin)
	return nil
}

// shutdown stops kwok, deletes the data dir and returns; the caller exits.
//
// The in-process components are not stopped one by one: a kube-apiserver
// whose context is cancelled while its post-start hooks run exits the process
// itself (klog.Fatal), and a graceful stop takes a second for nothing. They
// end with the process. The data dir is removed before anything else can
// fail, so an exit from inside a component cannot leak it.
func (c *cluster) shutdown() {
	t := time.Now()
	if c.runner != nil {
		c.runner.shutdown(2 * time.Second)
	}
	if c.kwok != nil && c.kwok.Process != nil {
		_ = c.kwok.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.kwokDone:
		case <-time.After(3 * time.Second):
			_ = c.kwok.Process.Kill()
			<-c.kwokDone
		}
	}
	// From here on the components only complain about going away.
	if !klog.V(2).Enabled() {
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
		etcdLogLevel.SetLevel(zapcore.FatalLevel)
	}
	c.removeData()
	if c.o.keepData {
		// Leave consistent etcd data behind: stop the apiserver, then etcd.
		if c.cancel != nil {
			c.cancel()
		}
		if c.apiDone != nil {
			select {
			case <-c.apiDone:
			case <-time.After(5 * time.Second):
			}
		}
		if c.etcd != nil {
			done := make(chan struct{})
			go func() { c.etcd.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
		}
	}
	fmt.Fprintf(c.logOut, "localcluster: stopped in %v\n", time.Since(t).Round(time.Millisecond))
}

// removeData deletes the ready file and (unless --keep-data) the data dir.
func (c *cluster) removeData() {
	c.removeOnce.Do(func() {
		if c.o.readyFile != "" {
			_ = os.Remove(c.o.readyFile)
		}
		if c.dataDir != "" && !c.o.keepData {
			if err := os.RemoveAll(c.dataDir); err != nil {
				fmt.Fprintf(c.logOut, "localcluster: remove data dir %s: %v\n", c.dataDir, err)
			}
		}
	})
}
