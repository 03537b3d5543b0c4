package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAdmitAllAnswersTheRequestItWasAsked(t *testing.T) {
	request := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1",
		"kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},"namespace":"bookstore","name":"bookstore","operation":"CREATE"}}`
	out, what, err := admitAll([]byte(request), "ingress-nginx-controller-admission.ingress-nginx.svc", "ingress-nginx/pod-1")
	if err != nil {
		t.Fatal(err)
	}
	if what != "CREATE Ingress bookstore/bookstore" {
		t.Errorf("what = %q", what)
	}
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Response   struct {
			UID      string   `json:"uid"`
			Allowed  bool     `json:"allowed"`
			Warnings []string `json:"warnings"`
			Patch    []byte   `json:"patch"`
		} `json:"response"`
	}
	if err := json.Unmarshal(out, &review); err != nil {
		t.Fatal(err)
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Response.UID != "u-1" ||
		!review.Response.Allowed || review.Response.Patch != nil {
		t.Errorf("response = %s", out)
	}
	if len(review.Response.Warnings) != 1 || !strings.Contains(review.Response.Warnings[0], "simulated pod ingress-nginx/pod-1") {
		t.Errorf("warnings = %v", review.Response.Warnings)
	}
	if _, _, err := admitAll([]byte(`{"kind":"AdmissionReview"}`), "h", "p"); err == nil {
		t.Error("a review without a request must be refused")
	}
}
