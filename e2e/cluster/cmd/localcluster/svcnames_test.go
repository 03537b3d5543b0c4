package main

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServiceHostsLines(t *testing.T) {
	svc := func(ns, name, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip}}
	}
	got := serviceHostsLines([]*corev1.Service{
		svc("osm-system", "osm-bootstrap", "10.96.3.7"),
		svc("bookwarehouse", "mysql", "None"),
		svc("bookstore", "bookstore", "10.96.0.20"),
	}, "bookstore")
	want := []string{
		"127.96.0.20\tbookstore.bookstore.svc.cluster.local bookstore.bookstore.svc bookstore.bookstore bookstore",
		"127.96.3.7\tosm-bootstrap.osm-system.svc.cluster.local osm-bootstrap.osm-system.svc osm-bootstrap.osm-system",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
