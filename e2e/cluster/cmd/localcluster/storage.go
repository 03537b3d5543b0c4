package main

// Storage: a default StorageClass that binds when the first pod is scheduled
// (WaitForFirstConsumer, as local volumes do) and a hostPath provisioner for
// it. Every claim of that class gets a PersistentVolume of its own, a
// directory under <data-dir>/volumes, pinned to the node the scheduler chose;
// the volume (and its directory) is deleted when the claim is.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const (
	storageClassName       = "standard"
	hostPathProvisioner    = "localcluster.meshoperator.dev/hostpath"
	annStorageProvisioner  = "volume.kubernetes.io/storage-provisioner"
	annBetaProvisioner     = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode        = "volume.kubernetes.io/selected-node"
	annProvisionedBy       = "pv.kubernetes.io/provisioned-by"
	annDefaultStorageClass = "storageclass.kubernetes.io/is-default-class"
)

// createStorageClass installs the default StorageClass (kept if it exists).
func createStorageClass(ctx context.Context, cs kubernetes.Interface) error {
	binding := storagev1.VolumeBindingWaitForFirstConsumer
	reclaim := corev1.PersistentVolumeReclaimDelete
	class := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        storageClassName,
			Annotations: map[string]string{annDefaultStorageClass: "true"},
		},
		Provisioner:       hostPathProvisioner,
		VolumeBindingMode: &binding,
		ReclaimPolicy:     &reclaim,
	}
	_, err := cs.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create StorageClass %s: %w", storageClassName, err)
	}
	return nil
}

// provisioner creates and deletes hostPath volumes for claims of our class.
type provisioner struct {
	cs    kubernetes.Interface
	dir   string // <data-dir>/volumes
	pvcs  cache.Indexer
	pvs   cache.Indexer
	queue workqueue.TypedRateLimitingInterface[string] // "pvc/<ns>/<name>" or "pv/<name>"
}

func startProvisioner(ctx context.Context, cs kubernetes.Interface, factory informers.SharedInformerFactory, dataDir string) *provisioner {
	p := &provisioner{
		cs:    cs,
		dir:   filepath.Join(dataDir, "volumes"),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	pvcInf := factory.Core().V1().PersistentVolumeClaims().Informer()
	pvInf := factory.Core().V1().PersistentVolumes().Informer()
	p.pvcs, p.pvs = pvcInf.GetIndexer(), pvInf.GetIndexer()
	enqueue := func(prefix string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				p.queue.Add(prefix + key)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }}
	}
	_, _ = pvcInf.AddEventHandler(enqueue("pvc/"))
	_, _ = pvInf.AddEventHandler(enqueue("pv/"))
	go func() {
		<-ctx.Done()
		p.queue.ShutDown()
	}()
	go p.work(ctx)
	return p
}

func (p *provisioner) work(ctx context.Context) {
	for {
		key, shutdown := p.queue.Get()
		if shutdown {
			return
		}
		var err error
		if len(key) > 4 && key[:4] == "pvc/" {
			err = p.syncClaim(ctx, key[4:])
		} else {
			err = p.syncVolume(ctx, key[3:])
		}
		if err != nil && ctx.Err() == nil {
			klog.V(1).InfoS("storage: retrying", "key", key, "err", err)
			p.queue.AddRateLimited(key)
		} else {
			p.queue.Forget(key)
		}
		p.queue.Done(key)
	}
}

func volumeName(claim *corev1.PersistentVolumeClaim) string { return "pvc-" + string(claim.UID) }

// syncClaim provisions a volume for an unbound claim of ours once the
// scheduler has picked its node.
func (p *provisioner) syncClaim(ctx context.Context, key string) error {
	obj, ok, err := p.pvcs.GetByKey(key)
	if err != nil || !ok {
		return err
	}
	claim := obj.(*corev1.PersistentVolumeClaim)
	prov := claim.Annotations[annStorageProvisioner]
	if prov == "" {
		prov = claim.Annotations[annBetaProvisioner]
	}
	node := claim.Annotations[annSelectedNode]
	if prov != hostPathProvisioner || node == "" || claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil {
		return nil
	}
	name := volumeName(claim)
	if _, exists, _ := p.pvs.GetByKey(name); exists {
		return nil
	}
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	_ = os.Chmod(path, 0o777) // any pod user may write, as with hostPath provisioners elsewhere
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	class := storageClassName
	if claim.Spec.StorageClassName != nil {
		class = *claim.Spec.StorageClassName
	}
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisionedBy: hostPathProvisioner},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   claim.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              class,
			VolumeMode:                    claim.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &dirOrCreate},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
				}}}},
			}},
		},
	}
	if size.IsZero() {
		pv.Spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	}
	_, err = p.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create PersistentVolume %s for claim %s: %w", name, key, err)
	}
	klog.InfoS("storage: provisioned", "claim", key, "volume", name, "node", node)
	return nil
}

// syncVolume deletes a released volume of ours and its directory.
func (p *provisioner) syncVolume(ctx context.Context, name string) error {
	obj, ok, err := p.pvs.GetByKey(name)
	if err != nil || !ok {
		return err
	}
	pv := obj.(*corev1.PersistentVolume)
	if pv.Annotations[annProvisionedBy] != hostPathProvisioner || pv.DeletionTimestamp != nil {
		return nil
	}
	if pv.Status.Phase != corev1.VolumeReleased || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	if pv.Spec.HostPath != nil && filepath.Dir(pv.Spec.HostPath.Path) == p.dir {
		if err := os.RemoveAll(pv.Spec.HostPath.Path); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = p.cs.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	klog.InfoS("storage: deleted released volume", "volume", name)
	return nil
}
