package main

// Service names inside real pods. Each real pod's network namespace has a
// tiny DNS server on 127.0.0.1:53 (its resolv.conf's nameserver) that answers
// only <service>.<namespace>.svc.cluster.local: with a loopback address of
// its own per Service (127.1.x.y), on which localcluster listens inside the
// pod for the Service's ports and forwards like the component proxy does (to a
// real pod behind the Service, else the connection is refused). Every other
// name is NXDOMAIN: nothing is ever resolved off the machine.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"k8s.io/klog/v2"
)

// serviceDNS is one pod's resolver and its Service addresses.
type serviceDNS struct {
	p     *realPod
	conn  net.PacketConn
	addrs map[string]net.IP // "svc.ns" -> address inside the pod
	next  int
}

func (p *realPod) startDNS() error {
	var conn net.PacketConn
	err := p.ns.do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", "127.0.0.1:53")
		return err
	})
	if err != nil {
		return fmt.Errorf("DNS in the pod's network namespace: %w", err)
	}
	d := &serviceDNS{p: p, conn: conn, addrs: map[string]net.IP{}}
	p.mu.Lock()
	p.closers = append(p.closers, conn)
	p.mu.Unlock()
	go d.serve()
	return nil
}

func (d *serviceDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if reply, err := d.answer(buf[:n]); err == nil {
			_, _ = d.conn.WriteTo(reply, from)
		}
	}
}

func (d *serviceDNS) answer(query []byte) ([]byte, error) {
	var parser dnsmessage.Parser
	header, err := parser.Start(query)
	if err != nil {
		return nil, err
	}
	question, err := parser.Question()
	if err != nil {
		return nil, err
	}
	header.Response, header.Authoritative, header.RecursionAvailable = true, true, false
	header.RCode = dnsmessage.RCodeNameError
	ip, known := d.resolve(strings.TrimSuffix(question.Name.String(), "."))
	if known {
		header.RCode = dnsmessage.RCodeSuccess
	}
	b := dnsmessage.NewBuilder(nil, header)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(question); err != nil {
		return nil, err
	}
	if known && question.Type == dnsmessage.TypeA {
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		var a [4]byte
		copy(a[:], ip.To4())
		rh := dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5}
		if err := b.AResource(rh, dnsmessage.AResource{A: a}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// resolve gives a Service its address in this pod, with forwarders for its ports.
func (d *serviceDNS) resolve(name string) (net.IP, bool) {
	svcName, ns, ok := serviceOfName(name)
	if !ok {
		return nil, false
	}
	svc, err := d.p.r.services.Services(ns).Get(svcName)
	if err != nil {
		return nil, false
	}
	key := svcName + "." + ns
	d.p.mu.Lock()
	ip, done := d.addrs[key]
	if !done {
		d.next++
		ip = net.IPv4(127, 1, byte(d.next>>8), byte(d.next&0xff))
		d.addrs[key] = ip
	}
	d.p.mu.Unlock()
	if done {
		return ip, true
	}
	pod := d.p.current()
	for _, port := range svc.Spec.Ports {
		if port.Protocol != "" && port.Protocol != "TCP" {
			continue
		}
		// A port the pod serves itself (declared, or of a Service selecting it) is its
		// containers' to bind on the wildcard address: as in svcnames.go, it is served here only
		// until the init containers are done (OSM's init containers resolve osm-bootstrap:9091,
		// which osm-controller then binds itself), and not at all after.
		servesItself := selects(svc, pod) || declaresPort(pod, port.Port)
		d.p.mu.Lock()
		if servesItself && d.p.initialized {
			d.p.mu.Unlock()
			continue
		}
		l, err := d.p.ns.listen(net.JoinHostPort(ip.String(), fmt.Sprint(port.Port)))
		if err != nil {
			d.p.mu.Unlock()
			klog.ErrorS(err, "runner: Service address in pod", "pod", klog.KRef(d.p.namespace, d.p.name), "service", key)
			continue
		}
		if servesItself {
			holdUntilInitialized(d.p.dir, l)
		} else {
			d.p.listeners = append(d.p.listeners, l)
		}
		d.p.mu.Unlock()
		host, svcPort := key+".svc", int(port.Port)
		go serveForward(l, host, func(ctx context.Context) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return d.p.r.dialService(ctx, host, svcPort)
		})
	}
	return ip, true
}

// serviceOfName: <service>.<namespace>.svc.cluster.local (or .svc).
func serviceOfName(name string) (svc, ns string, ok bool) {
	name = strings.ToLower(name)
	rest, found := strings.CutSuffix(name, ".svc.cluster.local")
	if !found {
		if rest, found = strings.CutSuffix(name, ".svc"); !found {
			return "", "", false
		}
	}
	svc, ns, ok = strings.Cut(rest, ".")
	if !ok || svc == "" || ns == "" || strings.Contains(ns, ".") {
		return "", "", false
	}
	return svc, ns, true
}
