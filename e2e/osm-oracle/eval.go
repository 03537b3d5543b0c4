package main

// Deciding a request on a sidecar's inbound configuration as Envoy does:
//  1. the filter chain of the destination port (none: connection refused);
//  2. the network RBAC filter, first on HTTP and TCP chains alike: some ALLOW policy must name the
//     caller's principal (or any) and the port (or any), else the connection is closed;
//  3. TCP chains: allowed. HTTP chains: the route configuration named by the connection manager;
//     the virtual host whose domains hold the :authority (none: 404); the FIRST route whose path
//     regex full-matches the path (query stripped) and whose every header regex full-matches the
//     header (absent: no match) (none: 404); that route's RBAC must name the caller (else 403).
// Regexes are RE2, as Envoy's safe_regex (Go's regexp implements RE2 syntax); a route
// configuration with a regex RE2 cannot compile is rejected by Envoy as a whole.

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Request is one request (or, without a method, a plain TCP connection) to a workload.
type Request struct {
	Source    string            `json:"source"`   // "ns/sa" of the caller
	Workload  string            `json:"workload"` // "ns/name" of the destination Deployment/StatefulSet
	Port      uint32            `json:"port"`     // destination port at the pod (a Service targetPort)
	Authority string            `json:"authority,omitempty"`
	Method    string            `json:"method,omitempty"`
	Path      string            `json:"path,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
}

var regexCache sync.Map // string -> *regexp.Regexp or error

func fullMatcher(re string) (*regexp.Regexp, error) {
	if v, ok := regexCache.Load(re); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*regexp.Regexp), nil
	}
	compiled, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		regexCache.Store(re, err)
		return nil, err
	}
	regexCache.Store(re, compiled)
	return compiled, nil
}

// rejectedBy reports the first regex of the route configuration Envoy would refuse.
func (rc *RouteConfig) rejectedBy() error {
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			if r.PathRegex != "" {
				if _, err := fullMatcher(r.PathRegex); err != nil {
					return fmt.Errorf("path regex %q: %w", r.PathRegex, err)
				}
			}
			for _, h := range r.Headers {
				if _, err := fullMatcher(h.Regex); err != nil {
					return fmt.Errorf("header %s regex %q: %w", h.Name, h.Regex, err)
				}
			}
		}
	}
	return nil
}

func principalIn(principals []string, principal string) bool {
	for _, p := range principals {
		if p == AnyPrincipal || p == principal {
			return true
		}
	}
	return false
}

func headerValue(req *Request, name string) (string, bool) {
	switch strings.ToLower(name) {
	case ":method":
		return req.Method, true
	case ":authority", "host":
		return req.Authority, true
	case ":path":
		return req.Path, true
	}
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func (r *Route) matches(req *Request) bool {
	path := req.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case r.PathRegex != "":
		re, err := fullMatcher(r.PathRegex)
		if err != nil || !re.MatchString(path) {
			return false
		}
	case r.PathExact != "":
		if path != r.PathExact {
			return false
		}
	case r.PathPrefix != "":
		if !strings.HasPrefix(path, r.PathPrefix) {
			return false
		}
	}
	for _, h := range r.Headers {
		value, present := headerValue(req, h.Name)
		if !present {
			return false
		}
		re, err := fullMatcher(h.Regex)
		if err != nil || !re.MatchString(value) {
			return false
		}
	}
	return true
}

func vhostFor(rc *RouteConfig, authority string) *VirtualHost {
	for i := range rc.VirtualHosts {
		for _, d := range rc.VirtualHosts[i].Domains {
			if strings.EqualFold(d, authority) {
				return &rc.VirtualHosts[i]
			}
		}
	}
	for i := range rc.VirtualHosts {
		for _, d := range rc.VirtualHosts[i].Domains {
			if d == "*" {
				return &rc.VirtualHosts[i]
			}
		}
	}
	return nil
}

// Decide tells whether Envoy lets req through, and why.
func Decide(l *Listener, routes []RouteConfig, principal string, req *Request) (bool, string) {
	var chain *Chain
	for i := range l.Chains {
		if l.Chains[i].Port == req.Port {
			chain = &l.Chains[i]
			break
		}
	}
	if chain == nil {
		return false, "no inbound filter chain for the port"
	}
	l4 := false
	for _, p := range chain.L4 {
		portOK := len(p.Ports) == 0
		for _, port := range p.Ports {
			portOK = portOK || port == req.Port
		}
		if portOK && principalIn(p.principals, principal) {
			l4 = true
			break
		}
	}
	if !l4 {
		return false, "L4 RBAC: no policy for the source on this port"
	}
	if chain.Protocol == "tcp" {
		return true, "L4 RBAC (TCP)"
	}
	if req.Method == "" {
		return true, "L4 RBAC (connection only)"
	}
	var rc *RouteConfig
	for i := range routes {
		if routes[i].Name == chain.RouteConfig {
			rc = &routes[i]
		}
	}
	if rc == nil {
		return false, "404: no route configuration"
	}
	if err := rc.rejectedBy(); err != nil {
		return false, "route configuration rejected by Envoy: " + err.Error()
	}
	vh := vhostFor(rc, req.Authority)
	if vh == nil {
		return false, "404: no virtual host for the authority"
	}
	for i := range vh.Routes {
		r := &vh.Routes[i]
		if !r.matches(req) {
			continue
		}
		if principalIn(r.principals, principal) {
			return true, "first matching route admits the source"
		}
		return false, "403: first matching route does not admit the source"
	}
	return false, "404: no route matches"
}
