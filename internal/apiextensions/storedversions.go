package apiextensions

import (
	"context"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// migrateStoredVersions rewrites every object of crd in the storage
// version, then trims status.storedVersions to it, so that an old version
// can be removed from the CRD safely. Each object is read and written back
// unchanged through the storage version; the write re-encodes it there
// (an object already stored in that version is not written).
//
// It waits until the current descriptors have been served for a while, so
// that writes which started under the previous storage version have been
// stored before the objects are listed; until then it asks to be requeued.
func (c *Controller) migrateStoredVersions(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (bool, error) {
	storage := ""
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storage = v.Name
		}
	}
	if storage == "" || slices.Equal(crd.Status.StoredVersions, []string{storage}) {
		return false, nil
	}
	c.mu.Lock()
	since := time.Since(c.registeredAt[crd.Name])
	c.mu.Unlock()
	if since < migrationSettle {
		return true, nil
	}
	return false, c.rewriteInStorageVersion(ctx, crd, storage)
}

// migrationSettle is how long descriptors for a new storage version are
// served before a migration lists objects: longer than a write takes.
const migrationSettle = time.Second

func (c *Controller) rewriteInStorageVersion(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, storage string) error {
	ri := c.dynamic.Resource(schema.GroupVersionResource{Group: crd.Spec.Group, Version: storage, Resource: crd.Spec.Names.Plural})
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := ri.List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			item := &list.Items[i]
			nri := ri.Namespace(item.GetNamespace())
			for attempt := 0; ; attempt++ {
				_, err := nri.Update(ctx, item, metav1.UpdateOptions{})
				if err == nil || apierrors.IsNotFound(err) {
					break
				}
				if !apierrors.IsConflict(err) || attempt > 5 {
					return err
				}
				// Changed meanwhile: that write stored it in the storage
				// version already, but rewrite the latest to be sure.
				if item, err = nri.Get(ctx, item.GetName(), metav1.GetOptions{}); err != nil {
					if apierrors.IsNotFound(err) {
						break
					}
					return err
				}
			}
		}
		if list.GetContinue() == "" {
			break
		}
		opts.Continue = list.GetContinue()
	}
	latest, err := c.client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if latest.Generation != crd.Generation {
		return nil // the storage version may have moved again; the next sync retries
	}
	latest.Status.StoredVersions = []string{storage}
	_, err = c.client.ApiextensionsV1().CustomResourceDefinitions().UpdateStatus(ctx, latest, metav1.UpdateOptions{})
	return err
}
