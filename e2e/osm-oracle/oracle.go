package main

// Enumerating TrafficTarget orders. OSM lists TrafficTargets from an informer store (a Go map),
// so the order of a destination's routes is not fixed: every order is equally possible, and may
// differ between proxies and config generations. For each destination workload the oracle builds
// the inbound routes under every order of its TrafficTargets (≤ 6 of them: all k! orders; more:
// a seeded sample of SampledOrders), groups identical configurations, and decides each request
// under each. A request is allowed under "all", "some" or "none" of the orders.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"

	"github.com/openservicemesh/osm/pkg/identity"
	"github.com/openservicemesh/osm/pkg/smi"
)

const (
	// MaxExhaustiveTargets is the largest number of TrafficTargets whose orders are all tried.
	MaxExhaustiveTargets = 6
	// SampledOrders is how many orders are tried beyond that.
	SampledOrders = 720
)

// Options of an evaluation.
type Options struct {
	Seed    int64 `json:"seed"`
	Explain bool  `json:"explain"`
}

// OrderVariant is one distinct inbound route configuration and how many orders produce it.
type OrderVariant struct {
	Orders       int           `json:"orders"`
	ExampleOrder []string      `json:"exampleOrder"`
	RouteConfigs []RouteConfig `json:"routeConfigs"`
}

// Destination is the inbound configuration of one workload's sidecar.
type Destination struct {
	Workload       string         `json:"workload"`
	Identity       string         `json:"identity"` // "ns/sa"
	TrafficTargets []string       `json:"trafficTargets"`
	Orders         int            `json:"orders"`
	Exhaustive     bool           `json:"exhaustive"`
	Listener       *Listener      `json:"listener,omitempty"`
	Variants       []OrderVariant `json:"variants,omitempty"`
	variants       []OrderVariant
	listener       *Listener
}

// Decision is the oracle's answer for one request.
type Decision struct {
	Verdict       string         `json:"verdict"` // "all", "some", "none"
	AllowedOrders int            `json:"allowedOrders"`
	Orders        int            `json:"orders"`
	Reasons       map[string]int `json:"reasons"`
	Error         string         `json:"error,omitempty"`
}

// Result of one input.
type Result struct {
	ID           string         `json:"id,omitempty"`
	Error        string         `json:"error,omitempty"`
	Destinations []*Destination `json:"destinations"`
	Decisions    []Decision     `json:"decisions"`
	Rejected     []string       `json:"rejected,omitempty"`
}

// Evaluate runs OSM on the objects and decides the requests.
func Evaluate(objects *Objects, requests []Request, opts Options) (*Result, error) {
	world, err := NewWorld(objects)
	if err != nil {
		return nil, err
	}
	defer world.Close()
	result := &Result{Rejected: objects.Rejected}
	byWorkload := map[string]*Destination{}
	rng := rand.New(rand.NewSource(opts.Seed))
	for _, wl := range world.Workloads {
		dest, err := world.destination(wl, rng)
		if err != nil {
			return nil, err
		}
		if opts.Explain {
			dest.Listener = dest.listener
			dest.Variants = dest.variants
		}
		byWorkload[wl.Key] = dest
		result.Destinations = append(result.Destinations, dest)
	}
	for i := range requests {
		req := &requests[i]
		dest, ok := byWorkload[req.Workload]
		if !ok {
			result.Decisions = append(result.Decisions, Decision{Verdict: "none", Error: "no such workload " + req.Workload,
				Reasons: map[string]int{"no such workload": 1}})
			continue
		}
		principal, err := principalOf(req.Source, world.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		d := Decision{Orders: dest.Orders, Reasons: map[string]int{}}
		for _, v := range dest.variants {
			allowed, reason := Decide(dest.listener, v.RouteConfigs, principal, req)
			if allowed {
				d.AllowedOrders += v.Orders
			}
			d.Reasons[reason] += v.Orders
		}
		switch d.AllowedOrders {
		case 0:
			d.Verdict = "none"
		case d.Orders:
			d.Verdict = "all"
		default:
			d.Verdict = "some"
		}
		result.Decisions = append(result.Decisions, d)
	}
	return result, nil
}

func principalOf(source, trustDomain string) (string, error) {
	for i := 0; i < len(source); i++ {
		if source[i] == '/' {
			return identity.K8sServiceAccount{Namespace: source[:i], Name: source[i+1:]}.AsPrincipal(trustDomain), nil
		}
	}
	return "", fmt.Errorf("source %q is not namespace/serviceaccount", source)
}

func (w *World) destination(wl *workload, rng *rand.Rand) (*Destination, error) {
	sa := wl.Identity.ToK8sServiceAccount()
	dest := &Destination{Workload: wl.Key, Identity: sa.Namespace + "/" + sa.Name}
	w.MeshSpec.rank = nil
	for _, t := range w.MeshSpec.ListTrafficTargets(smi.WithTrafficTargetDestination(sa)) {
		dest.TrafficTargets = append(dest.TrafficTargets, t.Namespace+"/"+t.Name)
	}
	sort.Strings(dest.TrafficTargets)
	listener, err := w.InboundListener(wl)
	if err != nil {
		return nil, err
	}
	dest.listener = listener
	services, err := w.ProxyServices(wl)
	if err != nil {
		return nil, err
	}
	orders, exhaustive := ordersOf(len(dest.TrafficTargets), rng)
	dest.Exhaustive = exhaustive
	index := map[string]int{}
	for _, order := range orders {
		rank := make(map[string]int, len(order))
		names := make([]string, len(order))
		for pos, ti := range order {
			rank[dest.TrafficTargets[ti]] = pos
			names[pos] = dest.TrafficTargets[ti]
		}
		w.MeshSpec.rank = rank
		configs, err := w.InboundRoutes(wl, services)
		if err != nil {
			return nil, err
		}
		key, err := json.Marshal(configs)
		if err != nil {
			return nil, fmt.Errorf("encoding routes of %s: %w", wl.Key, err)
		}
		if i, seen := index[string(key)]; seen {
			dest.variants[i].Orders++
			continue
		}
		index[string(key)] = len(dest.variants)
		dest.variants = append(dest.variants, OrderVariant{Orders: 1, ExampleOrder: names, RouteConfigs: configs})
	}
	w.MeshSpec.rank = nil
	dest.Orders = len(orders)
	return dest, nil
}

// ordersOf lists the orders of n items tried: all of them up to MaxExhaustiveTargets, else the
// identity, the reverse and random ones, SampledOrders in all.
func ordersOf(n int, rng *rand.Rand) ([][]int, bool) {
	identityOrder := make([]int, n)
	for i := range identityOrder {
		identityOrder[i] = i
	}
	if n <= MaxExhaustiveTargets {
		var out [][]int
		permute(identityOrder, 0, &out)
		return out, true
	}
	reverse := make([]int, n)
	for i := range reverse {
		reverse[i] = n - 1 - i
	}
	out := [][]int{identityOrder, reverse}
	for len(out) < SampledOrders {
		out = append(out, rng.Perm(n))
	}
	return out, false
}

func permute(a []int, k int, out *[][]int) {
	if k == len(a) {
		*out = append(*out, append([]int(nil), a...))
		return
	}
	for i := k; i < len(a); i++ {
		a[k], a[i] = a[i], a[k]
		permute(a, k+1, out)
		a[k], a[i] = a[i], a[k]
	}
}
