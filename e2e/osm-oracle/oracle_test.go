package main

// The reference note's facts (../../shared/reference/osm-v1.2.4-enforcement.md), reproduced by
// running OSM v1.2.4's own builders on small inputs.

import (
	"os"
	"strings"
	"testing"

	"github.com/openservicemesh/osm/pkg/logger"
)

func init() { _ = logger.SetLogLevel("disabled") }

// server: app/server (ServiceAccount server) behind Service server, HTTP 80 -> 8080 and a TCP
// port 5432 (appProtocol tcp).
const serverYAML = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: server, namespace: app}
spec:
  selector: {matchLabels: {app: server}}
  template:
    metadata: {labels: {app: server}}
    spec:
      serviceAccountName: server
      containers: [{name: server, image: server, ports: [{containerPort: 8080}, {containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: app}
spec:
  selector: {app: server}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: db, port: 5432, targetPort: 5432, appProtocol: tcp}
`

func target(name string, sources []string, rules string) string {
	var b strings.Builder
	b.WriteString("---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: " + name + ", namespace: app}\nspec:\n")
	b.WriteString("  destination: {kind: ServiceAccount, name: server, namespace: app}\n")
	if sources == nil {
		b.WriteString("  sources: []\n")
	} else {
		b.WriteString("  sources:\n")
		for _, s := range sources {
			b.WriteString("  - {kind: ServiceAccount, name: " + s + ", namespace: app}\n")
		}
	}
	b.WriteString("  rules:\n" + rules)
	return b.String()
}

func evaluate(t *testing.T, yaml string, requests []Request) *Result {
	t.Helper()
	objects, err := ReadYAMLStream(strings.NewReader(serverYAML + yaml))
	if err != nil {
		t.Fatal(err)
	}
	result, err := Evaluate(objects, requests, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(result.Decisions) != len(requests) {
		t.Fatalf("%d decisions for %d requests", len(result.Decisions), len(requests))
	}
	return result
}

func get(source, path string) Request {
	return Request{Source: "app/" + source, Workload: "app/server", Port: 8080, Authority: "server.app:80", Method: "GET", Path: path}
}

func expect(t *testing.T, result *Result, requests []Request, verdicts ...string) {
	t.Helper()
	for i, want := range verdicts {
		if got := result.Decisions[i]; got.Verdict != want {
			t.Errorf("request %d %+v: verdict %q (%d/%d orders, %v), want %q", i, requests[i], got.Verdict,
				got.AllowedOrders, got.Orders, got.Reasons, want)
		}
	}
}

// Overlapping but unequal matches granted to different sources: the first matching route decides,
// and the route order follows the TrafficTarget order, which OSM does not fix.
func TestShadowedGrantDependsOnOrder(t *testing.T) {
	yaml := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - {name: api, pathRegex: "/api/.*", methods: ["GET"]}
  - {name: admin, pathRegex: "/api/admin", methods: ["GET"]}
` + target("a-api", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [api]}\n") +
		target("b-admin", []string{"client-b"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [admin]}\n")
	requests := []Request{get("client-b", "/api/admin"), get("client-a", "/api/admin"), get("client-a", "/api/x"),
		get("client-b", "/api/x"), get("client-c", "/api/admin")}
	result := evaluate(t, yaml, requests)
	expect(t, result, requests, "some", "some", "all", "none", "none")
	if d := result.Decisions[0]; d.AllowedOrders != 1 || d.Orders != 2 {
		t.Errorf("shadowed grant: allowed under %d of %d orders, want 1 of 2", d.AllowedOrders, d.Orders)
	}
}

// Identical matches in two TrafficTargets are merged (MergeRules): one route, principals unioned,
// whatever the order. [GET] and [GET,POST] are different routes and are not merged.
func TestIdenticalMatchesMerge(t *testing.T) {
	yaml := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - {name: books, pathRegex: "/books", methods: ["GET"]}
  - {name: books-too, pathRegex: "/books", methods: ["GET"]}
  - {name: books-rw, pathRegex: "/books", methods: ["GET", "POST"]}
` + target("a", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [books]}\n") +
		target("b", []string{"client-b"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [books-too]}\n") +
		target("c", []string{"client-c"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [books-rw]}\n")
	requests := []Request{get("client-a", "/books"), get("client-b", "/books"), get("client-c", "/books")}
	result := evaluate(t, yaml, requests)
	// a and b share one merged route; c's GET route shadows it or is shadowed by it.
	expect(t, result, requests, "some", "some", "some")
	merged := 0
	for _, v := range result.Destinations[0].variants {
		for _, r := range v.RouteConfigs[0].VirtualHosts[0].Routes {
			if len(r.Principals) == 2 {
				merged++
			}
		}
	}
	if merged == 0 {
		t.Errorf("no route carries both client-a and client-b")
	}

	// Without the [GET,POST] grant the merged route is the only one: allowed under every order.
	yaml2 := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - {name: books, pathRegex: "/books", methods: ["GET"]}
` + target("a", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [books]}\n") +
		target("b", []string{"client-b"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [books]}\n")
	result = evaluate(t, yaml2, requests)
	expect(t, result, requests, "all", "all", "none")
	if n := len(result.Destinations[0].variants); n != 1 {
		t.Errorf("merged routes differ between orders: %d variants", n)
	}
}

// `sources: []` is an empty principal set, which OSM's RBAC builder turns into any principal, at
// L4 and on the route.
func TestEmptySourcesAllowAnyIdentity(t *testing.T) {
	yaml := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches: [{name: all, pathRegex: "/open/.*"}]
` + target("anyone", nil, "  - {kind: HTTPRouteGroup, name: routes, matches: [all]}\n")
	requests := []Request{get("whoever", "/open/x"), get("other", "/open/y"), get("whoever", "/closed"),
		{Source: "app/whoever", Workload: "app/server", Port: 5432}}
	result := evaluate(t, yaml, requests)
	expect(t, result, requests, "all", "all", "none", "all")
}

// A TrafficTarget whose TCPRoute does not exist is dropped from L4: its HTTP routes exist, but its
// sources cannot connect. With the TCPRoute present, L4 is limited to the TCPRoute's ports, on
// HTTP chains as well.
func TestMissingTCPRouteGrantsNoL4(t *testing.T) {
	group := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches: [{name: all, pathRegex: "/.*"}]
`
	rules := "  - {kind: HTTPRouteGroup, name: routes, matches: [all]}\n  - {kind: TCPRoute, name: db}\n"
	yaml := group + target("a", []string{"client-a"}, rules) +
		target("b", []string{"client-b"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [all]}\n")
	requests := []Request{get("client-a", "/x"), get("client-b", "/x"),
		{Source: "app/client-a", Workload: "app/server", Port: 5432}}
	result := evaluate(t, yaml, requests)
	// a's and b's identical matches are merged into one route naming both; only L4 tells them apart.
	expect(t, result, requests, "none", "all", "none")

	withRoute := yaml + `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: app}
spec:
  matches: {ports: [5432]}
`
	result = evaluate(t, withRoute, requests)
	// a's L4 grant is port 5432 only: its HTTP request on 8080 is closed at L4.
	expect(t, result, requests, "none", "all", "all")
}

// Method strings are case-sensitive full-match regexes: GET|POST admits GET and POST; get admits
// nothing sent as GET; a * element means any method.
func TestMethodsAreRegexes(t *testing.T) {
	yaml := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - {name: rw, pathRegex: "/rw", methods: ["GET|POST"]}
  - {name: lower, pathRegex: "/lower", methods: ["get"]}
  - {name: star, pathRegex: "/star", methods: ["DELETE", "*"]}
` + target("a", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [rw, lower, star]}\n")
	req := func(method, path string) Request {
		r := get("client-a", path)
		r.Method = method
		return r
	}
	requests := []Request{req("GET", "/rw"), req("POST", "/rw"), req("DELETE", "/rw"), req("GET", "/lower"),
		req("get", "/lower"), req("PATCH", "/star")}
	result := evaluate(t, yaml, requests)
	expect(t, result, requests, "all", "all", "none", "none", "all", "all")
}

// The header key `host` matches :authority; other headers are full-match regexes on the value.
func TestHostHeaderIsAuthority(t *testing.T) {
	yaml := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - name: h
    pathRegex: "/h"
    headers: [{host: "server\\.app(:80)?"}, {x-team: "red|blue"}]
` + target("a", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [h]}\n")
	with := func(authority string, headers map[string]string) Request {
		r := get("client-a", "/h")
		r.Authority = authority
		r.Headers = headers
		return r
	}
	requests := []Request{with("server.app:80", map[string]string{"x-team": "red"}),
		with("server", map[string]string{"x-team": "red"}), with("server.app", map[string]string{"x-team": "reds"}),
		with("server.app", nil)}
	result := evaluate(t, yaml, requests)
	expect(t, result, requests, "all", "none", "none", "none")
}

// routesFromRules ignores a rule's kind: a TCPRoute rule with matches, named after an
// HTTPRouteGroup, grants those matches as HTTP routes. With no TCPRoute of that name the
// TrafficTarget has no L4 grant, so its own source is closed out, yet its route can come first
// and deny another TrafficTarget's source on an overlapping match.
func TestTCPRouteRuleMatchesAreHTTPRoutes(t *testing.T) {
	yaml := `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - {name: items, pathRegex: "/items/.*", methods: ["GET"]}
  - {name: any-item, pathRegex: "/items/.*"}
` + target("a", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [items]}\n") +
		target("b", []string{"client-b"}, "  - {kind: TCPRoute, name: routes, matches: [any-item]}\n")
	requests := []Request{get("client-a", "/items/1"), get("client-b", "/items/1")}
	result := evaluate(t, yaml, requests)
	expect(t, result, requests, "some", "none")
	found := false
	for _, v := range result.Destinations[0].variants {
		for _, r := range v.RouteConfigs[0].VirtualHosts[0].Routes {
			for _, p := range r.Principals {
				found = found || strings.Contains(p, "client-b")
			}
		}
	}
	if !found {
		t.Errorf("no HTTP route carries client-b: the TCPRoute rule's matches were not granted as routes")
	}
}

// `headers: []` unmarshals to an empty map, a missing `headers` to a nil map: reflect.DeepEqual
// tells them apart, so MergeRules does not merge the two routes and the first one decides.
func TestEmptyHeadersListIsNotMerged(t *testing.T) {
	group := func(second string) string {
		return `---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: app}
spec:
  matches:
  - {name: plain, pathRegex: "/report", methods: ["GET"]}
  - {name: other, pathRegex: "/report", methods: ["GET"]` + second + `}
`
	}
	targets := target("a", []string{"client-a"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [plain]}\n") +
		target("b", []string{"client-b"}, "  - {kind: HTTPRouteGroup, name: routes, matches: [other]}\n")
	requests := []Request{get("client-a", "/report"), get("client-b", "/report")}
	expect(t, evaluate(t, group("")+targets, requests), requests, "all", "all")
	expect(t, evaluate(t, group(", headers: []")+targets, requests), requests, "some", "some")
}

// The article's own policies, as a smoke test of a bigger input.
func TestShadowedFixtureFile(t *testing.T) {
	f, err := os.Open("testdata/shadowed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objects, err := ReadYAMLStream(f)
	if err != nil {
		t.Fatal(err)
	}
	requests := []Request{{Source: "app/client-b", Workload: "app/server", Port: 8080, Authority: "server", Method: "GET", Path: "/api/admin"}}
	result, err := Evaluate(objects, requests, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := result.Decisions[0]; d.Verdict != "some" {
		t.Errorf("verdict %q, want some", d.Verdict)
	}
}
