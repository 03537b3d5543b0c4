package main

// The inbound Envoy configuration OSM v1.2.4 sends a sidecar, produced by OSM's own builders
// (lds.NewResponse for the inbound listener with its network RBAC filter; the catalog's inbound
// traffic policy, MergeRules and route.BuildInboundMeshRouteConfiguration for RDS, which is what
// rds.NewResponse runs for inbound routes) and reduced to what decides a request.

import (
	"fmt"
	"sort"
	"strings"

	xds_listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	xds_rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	xds_route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	xds_http_rbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	xds_hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	xds_network_rbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/openservicemesh/osm/pkg/envoy"
	"github.com/openservicemesh/osm/pkg/envoy/lds"
	"github.com/openservicemesh/osm/pkg/envoy/rds/route"
	"github.com/openservicemesh/osm/pkg/service"
)

// AnyPrincipal stands for Envoy's `any: true` principal.
const AnyPrincipal = "*"

// L4Policy is one policy of the inbound network RBAC filter (ALLOW).
type L4Policy struct {
	Name       string   `json:"name"`
	Principals []string `json:"principals"`      // identities "ns/sa", or "*"
	Ports      []uint32 `json:"ports,omitempty"` // empty = any port
	principals []string // raw principal names
}

// Chain is one inbound filter chain.
type Chain struct {
	Port        uint32     `json:"port"`
	Protocol    string     `json:"protocol"` // "http" or "tcp"
	RouteConfig string     `json:"routeConfig,omitempty"`
	ServerNames []string   `json:"serverNames,omitempty"`
	L4          []L4Policy `json:"l4"`
}

// HeaderMatch is one header matcher of a route (always a full-match RE2 regex in OSM).
type HeaderMatch struct {
	Name  string `json:"name"`
	Regex string `json:"regex"`
}

// Route is one inbound route with its per-route RBAC.
type Route struct {
	PathRegex  string        `json:"pathRegex,omitempty"`
	PathExact  string        `json:"pathExact,omitempty"`
	PathPrefix string        `json:"pathPrefix,omitempty"`
	Headers    []HeaderMatch `json:"headers"`
	Principals []string      `json:"principals"`
	principals []string
}

// VirtualHost of an inbound route configuration.
type VirtualHost struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains"`
	Routes  []Route  `json:"routes"`
}

// RouteConfig is one inbound RDS route configuration (one per HTTP target port).
type RouteConfig struct {
	Name         string        `json:"name"`
	VirtualHosts []VirtualHost `json:"virtualHosts"`
}

// Listener is the sidecar's inbound listener.
type Listener struct {
	Chains []Chain `json:"chains"`
}

// identityOf turns `sa.ns.<trust domain>` into "ns/sa".
func (w *World) identityOf(principal string) string {
	if principal == AnyPrincipal {
		return AnyPrincipal
	}
	base := strings.TrimSuffix(principal, "."+w.TrustDomain)
	if i := strings.LastIndex(base, "."); i >= 0 {
		return base[i+1:] + "/" + base[:i]
	}
	return principal
}

func (w *World) principalsOf(policies map[string]*xds_rbac.Policy) (raw []string, ports []uint32, err error) {
	for _, p := range policies {
		for _, pr := range p.Principals {
			switch id := pr.Identifier.(type) {
			case *xds_rbac.Principal_Any:
				raw = append(raw, AnyPrincipal)
			case *xds_rbac.Principal_Authenticated_:
				raw = append(raw, id.Authenticated.GetPrincipalName().GetExact())
			default:
				return nil, nil, fmt.Errorf("unexpected RBAC principal %T", id)
			}
		}
		for _, perm := range p.Permissions {
			switch r := perm.Rule.(type) {
			case *xds_rbac.Permission_Any:
			case *xds_rbac.Permission_DestinationPort:
				ports = append(ports, r.DestinationPort)
			default:
				return nil, nil, fmt.Errorf("unexpected RBAC permission %T", r)
			}
		}
	}
	return raw, ports, nil
}

// InboundListener runs lds.NewResponse for the workload's proxy.
func (w *World) InboundListener(wl *workload) (*Listener, error) {
	resources, err := lds.NewResponse(w.Catalog, wl.Proxy, nil, w.Config, w.Certs, w.Registry)
	if err != nil {
		return nil, fmt.Errorf("lds.NewResponse for %s: %w", wl.Key, err)
	}
	out := &Listener{}
	for _, res := range resources {
		l, ok := res.(*xds_listener.Listener)
		if !ok || l.Name != lds.InboundListenerName {
			continue
		}
		for _, fc := range l.FilterChains {
			chain := Chain{Port: fc.GetFilterChainMatch().GetDestinationPort().GetValue(),
				ServerNames: fc.GetFilterChainMatch().GetServerNames()}
			for _, f := range fc.Filters {
				switch f.Name {
				case envoy.L4RBACFilterName:
					var rbac xds_network_rbac.RBAC
					if err := f.GetTypedConfig().UnmarshalTo(&rbac); err != nil {
						return nil, fmt.Errorf("network RBAC of %s: %w", wl.Key, err)
					}
					if rbac.GetRules().GetAction() != xds_rbac.RBAC_ALLOW {
						return nil, fmt.Errorf("network RBAC of %s: unexpected action %v", wl.Key, rbac.GetRules().GetAction())
					}
					names := make([]string, 0, len(rbac.GetRules().GetPolicies()))
					for name := range rbac.GetRules().GetPolicies() {
						names = append(names, name)
					}
					sort.Strings(names)
					for _, name := range names {
						raw, ports, err := w.principalsOf(map[string]*xds_rbac.Policy{name: rbac.GetRules().GetPolicies()[name]})
						if err != nil {
							return nil, fmt.Errorf("network RBAC policy %s of %s: %w", name, wl.Key, err)
						}
						p := L4Policy{Name: name, Ports: ports, principals: raw}
						for _, r := range raw {
							p.Principals = append(p.Principals, w.identityOf(r))
						}
						chain.L4 = append(chain.L4, p)
					}
				case envoy.HTTPConnectionManagerFilterName:
					var hcm xds_hcm.HttpConnectionManager
					if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
						return nil, fmt.Errorf("HTTP connection manager of %s: %w", wl.Key, err)
					}
					chain.Protocol = "http"
					chain.RouteConfig = hcm.GetRds().GetRouteConfigName()
				case envoy.TCPProxyFilterName:
					chain.Protocol = "tcp"
				}
			}
			if chain.Protocol == "" {
				continue
			}
			out.Chains = append(out.Chains, chain)
		}
	}
	return out, nil
}

// ProxyServices are the MeshServices of the workload's pod (OSM's KubeProxyServiceMapper).
func (w *World) ProxyServices(wl *workload) ([]service.MeshService, error) {
	services, err := w.Registry.ListProxyServices(wl.Proxy)
	if err != nil {
		return nil, fmt.Errorf("services of %s: %w", wl.Key, err)
	}
	return services, nil
}

// InboundRoutes builds the inbound RDS route configurations for the workload with the
// TrafficTarget order currently set on the mesh spec.
func (w *World) InboundRoutes(wl *workload, services []service.MeshService) ([]RouteConfig, error) {
	policy := w.Catalog.GetInboundMeshTrafficPolicy(wl.Identity, services)
	if policy == nil {
		return nil, nil
	}
	built := route.BuildInboundMeshRouteConfiguration(policy.HTTPRouteConfigsPerPort, wl.Proxy, w.Config, w.TrustDomain)
	var out []RouteConfig
	for _, rc := range built {
		config := RouteConfig{Name: rc.Name}
		for _, vh := range rc.VirtualHosts {
			vhost := VirtualHost{Name: vh.Name, Domains: vh.Domains}
			for _, r := range vh.Routes {
				converted, err := w.convertRoute(r)
				if err != nil {
					return nil, fmt.Errorf("route config %s of %s: %w", rc.Name, wl.Key, err)
				}
				vhost.Routes = append(vhost.Routes, converted)
			}
			config.VirtualHosts = append(config.VirtualHosts, vhost)
		}
		out = append(out, config)
	}
	// OSM builds them from a map (port -> policies); Envoy looks them up by name.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (w *World) convertRoute(r *xds_route.Route) (Route, error) {
	var out Route
	switch p := r.GetMatch().GetPathSpecifier().(type) {
	case *xds_route.RouteMatch_SafeRegex:
		out.PathRegex = p.SafeRegex.GetRegex()
	case *xds_route.RouteMatch_Path:
		out.PathExact = p.Path
	case *xds_route.RouteMatch_Prefix:
		out.PathPrefix = p.Prefix
	default:
		return out, fmt.Errorf("unexpected path specifier %T", p)
	}
	for _, h := range r.GetMatch().GetHeaders() {
		m, ok := h.GetHeaderMatchSpecifier().(*xds_route.HeaderMatcher_SafeRegexMatch)
		if !ok || h.GetInvertMatch() {
			return out, fmt.Errorf("unexpected header matcher on %s: %T", h.GetName(), h.GetHeaderMatchSpecifier())
		}
		out.Headers = append(out.Headers, HeaderMatch{Name: h.GetName(), Regex: m.SafeRegexMatch.GetRegex()})
	}
	cfg, ok := r.GetTypedPerFilterConfig()[envoy.HTTPRBACFilterName]
	if !ok {
		return out, fmt.Errorf("route without per-route RBAC")
	}
	var perRoute xds_http_rbac.RBACPerRoute
	if err := cfg.UnmarshalTo(&perRoute); err != nil {
		return out, fmt.Errorf("per-route RBAC: %w", err)
	}
	if perRoute.GetRbac().GetRules().GetAction() != xds_rbac.RBAC_ALLOW {
		return out, fmt.Errorf("per-route RBAC: unexpected action")
	}
	raw, ports, err := w.principalsOf(perRoute.GetRbac().GetRules().GetPolicies())
	if err != nil {
		return out, fmt.Errorf("per-route RBAC: %w", err)
	}
	if len(ports) > 0 {
		return out, fmt.Errorf("per-route RBAC with port permissions")
	}
	sort.Strings(raw)
	out.principals = raw
	for _, p := range raw {
		out.Principals = append(out.Principals, w.identityOf(p))
	}
	return out, nil
}
