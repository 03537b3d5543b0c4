package main

// The status of a real pod, from its containers' real states, written to the
// status subresource (coalesced: one write per burst of changes).

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

func (p *realPod) statusLoop() {
	var last []byte
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		}
		status := p.buildStatus()
		body, err := json.Marshal(map[string]any{"status": status})
		if err != nil || string(body) == string(last) {
			continue
		}
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		_, err = p.r.cs.CoreV1().Pods(p.namespace).Patch(ctx, p.name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
		cancel()
		if err != nil {
			if apierrors.IsNotFound(err) || p.ctx.Err() != nil {
				return
			}
			klog.V(1).InfoS("runner: pod status", "pod", klog.KRef(p.namespace, p.name), "err", err)
			time.Sleep(200 * time.Millisecond)
			p.changed()
			continue
		}
		last = body
	}
}

func (c *container) status(isInit bool) corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := corev1.ContainerStatus{
		Name:         c.spec.Name,
		Image:        c.spec.Image,
		Ready:        c.ready,
		RestartCount: c.restartCount,
		State:        c.state,
	}
	started := c.started
	if !isInit {
		s.Started = &started
	}
	if c.image != nil {
		s.ImageID = c.image.digest.String()
	}
	if c.state.Running != nil || c.state.Terminated != nil {
		s.ContainerID = "runc://" + c.id
	}
	if c.restartCount > 0 || (c.state.Waiting != nil && c.lastState.Terminated != nil) {
		s.LastTerminationState = c.lastState
	}
	return s
}

func condition(t corev1.PodConditionType, ok bool, reason string, now metav1.Time) corev1.PodCondition {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
		reason = ""
	}
	return corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now}
}

func (p *realPod) buildStatus() corev1.PodStatus {
	pod := p.current()
	p.mu.Lock()
	sandbox, initialized, finished, setupErr, startTime := p.sandboxReady, p.initialized, p.finished, p.setupErr, p.startTime
	p.mu.Unlock()

	st := corev1.PodStatus{
		HostIP:    p.hostIP(),
		PodIP:     p.podIP,
		PodIPs:    []corev1.PodIP{{IP: p.podIP}},
		StartTime: &startTime,
		QOSClass:  pod.Status.QOSClass,
	}
	st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	for _, c := range p.init {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.status(true))
	}
	allReady, anyRunning, allTerminated, allSucceeded := true, false, true, true
	for _, c := range p.main {
		cs := c.status(false)
		if setupErr != "" && cs.State.Waiting != nil {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: setupErr}
		}
		if !initialized && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ContainerCreating" && len(p.init) > 0 {
			cs.State.Waiting.Reason = "PodInitializing"
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
		anyRunning = anyRunning || cs.State.Running != nil
		allTerminated = allTerminated && cs.State.Terminated != nil
		allSucceeded = allSucceeded && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
	}
	initFailed := false
	for _, ics := range st.InitContainerStatuses {
		if t := ics.State.Terminated; t != nil && t.ExitCode != 0 && finished {
			initFailed = true
		}
	}
	switch {
	case finished && initFailed:
		st.Phase = corev1.PodFailed
	case finished && allTerminated && allSucceeded:
		st.Phase = corev1.PodSucceeded
	case finished && allTerminated:
		st.Phase = corev1.PodFailed
	case initialized && (anyRunning || allTerminated):
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}

	// Keep lastTransitionTime when a condition's status did not change.
	now := metav1.Now()
	old := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range pod.Status.Conditions {
		old[c.Type] = c
	}
	ready := initialized && allReady && !finished
	conds := []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, sandbox, "", now),
		condition(corev1.PodInitialized, initialized, "ContainersNotInitialized", now),
		condition(corev1.ContainersReady, ready, "ContainersNotReady", now),
		condition(corev1.PodReady, ready, "ContainersNotReady", now),
		condition(corev1.PodScheduled, true, "", now),
	}
	if finished {
		conds[2].Reason, conds[3].Reason = "PodCompleted", "PodCompleted"
	}
	for i, c := range conds {
		if o, ok := old[c.Type]; ok && o.Status == c.Status {
			conds[i].LastTransitionTime = o.LastTransitionTime
		}
	}
	st.Conditions = conds
	return st
}
