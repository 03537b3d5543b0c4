package main

// Reading the objects of one input: Kubernetes objects (JSON or a YAML stream), told apart by
// `kind`. SMI objects are decoded with smi-sdk-go's types, exactly as OSM's informers decode
// them: an object they cannot decode (e.g. a multi-key header element) is dropped and reported.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	smiAccess "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	smiSpecs "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"
	smiSplit "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Objects is everything one input holds.
type Objects struct {
	TrafficTargets  []*smiAccess.TrafficTarget
	HTTPRouteGroups []*smiSpecs.HTTPRouteGroup
	TCPRoutes       []*smiSpecs.TCPRoute
	TrafficSplits   []*smiSplit.TrafficSplit
	Services        []*corev1.Service
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	// Rejected lists objects OSM's informers could not decode, as `Kind/ns/name: error`.
	Rejected []string
	// Ignored lists objects of kinds the oracle does not read.
	Ignored []string
}

type header struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// Add decodes one JSON object into its typed form.
func (o *Objects) Add(raw []byte) error {
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return fmt.Errorf("reading an object: %w", err)
	}
	if h.Kind == "List" {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("reading a List: %w", err)
		}
		for _, item := range list.Items {
			if err := o.Add(item); err != nil {
				return err
			}
		}
		return nil
	}
	name := fmt.Sprintf("%s/%s/%s", h.Kind, h.Metadata.Namespace, h.Metadata.Name)
	if h.Metadata.Namespace == "" || h.Metadata.Name == "" {
		if h.Kind == "" {
			return nil
		}
		return fmt.Errorf("%s: metadata.name and metadata.namespace are required", name)
	}
	decode := func(into interface{}) bool {
		if err := json.Unmarshal(raw, into); err != nil {
			o.Rejected = append(o.Rejected, fmt.Sprintf("%s: %v", name, err))
			return false
		}
		return true
	}
	switch h.Kind {
	case "TrafficTarget":
		var v smiAccess.TrafficTarget
		if decode(&v) {
			o.TrafficTargets = append(o.TrafficTargets, &v)
		}
	case "HTTPRouteGroup":
		var v smiSpecs.HTTPRouteGroup
		if decode(&v) {
			o.HTTPRouteGroups = append(o.HTTPRouteGroups, &v)
		}
	case "TCPRoute":
		var v smiSpecs.TCPRoute
		if decode(&v) {
			o.TCPRoutes = append(o.TCPRoutes, &v)
		}
	case "TrafficSplit":
		var v smiSplit.TrafficSplit
		if decode(&v) {
			o.TrafficSplits = append(o.TrafficSplits, &v)
		}
	case "Service":
		var v corev1.Service
		if decode(&v) {
			o.Services = append(o.Services, &v)
		}
	case "Deployment":
		var v appsv1.Deployment
		if decode(&v) {
			o.Deployments = append(o.Deployments, &v)
		}
	case "StatefulSet":
		var v appsv1.StatefulSet
		if decode(&v) {
			o.StatefulSets = append(o.StatefulSets, &v)
		}
	default:
		o.Ignored = append(o.Ignored, name)
	}
	return nil
}

// ReadYAMLStream reads a multi-document YAML (or JSON) stream.
func ReadYAMLStream(r io.Reader) (*Objects, error) {
	text, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	objects := &Objects{}
	for i, doc := range splitYAML(string(text)) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		raw, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if bytes.Equal(raw, []byte("null")) {
			continue
		}
		if err := objects.Add(raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return objects, nil
}

func splitYAML(text string) []string {
	var docs []string
	var current strings.Builder
	scanner := bufio.NewScanner(strings.NewReader(text))
	scanner.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimLeft(line, "-")) == "" {
			docs = append(docs, current.String())
			current.Reset()
			continue
		}
		current.WriteString(line)
		current.WriteByte('\n')
	}
	return append(docs, current.String())
}
