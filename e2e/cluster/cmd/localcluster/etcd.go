package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdLogLevel is raised to "fatal" at shutdown: closing etcd under a live
// apiserver logs a burst of harmless "server closed" errors.
var etcdLogLevel = zap.NewAtomicLevelAt(zapcore.ErrorLevel)

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd runs a single-member embedded etcd on loopback with settings
// tuned for a throw-away test cluster (no fsync, small quota, quiet logs).
// It returns the client URL.
func startEtcd(dir, logLevel string, logOut io.Writer) (*embed.Etcd, string, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}

	if err := etcdLogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, "", fmt.Errorf("--etcd-log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	sink := zapcore.Lock(zapcore.AddSync(logOut))
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), sink, etcdLogLevel), zap.ErrorOutput(sink))

	cfg := embed.NewConfig()
	cfg.Name = "localcluster"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	// Test data is thrown away: never fsync.
	cfg.UnsafeNoFsync = true
	cfg.QuotaBackendBytes = 2 * 1024 * 1024 * 1024
	cfg.SnapshotCount = 5000
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	// Single member on loopback: elect fast.
	cfg.TickMs = 50
	cfg.ElectionMs = 500

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, "", fmt.Errorf("etcd did not become ready within 60s")
	}
	return e, clientURL.String(), nil
}
