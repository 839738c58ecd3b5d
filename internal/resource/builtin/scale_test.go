package builtin_test

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	deploymentstorage "k8s.io/kubernetes/pkg/registry/apps/deployment/storage"
	replicasetstorage "k8s.io/kubernetes/pkg/registry/apps/replicaset/storage"
	statefulsetstorage "k8s.io/kubernetes/pkg/registry/apps/statefulset/storage"
	rcstorage "k8s.io/kubernetes/pkg/registry/core/replicationcontroller/storage"

	"github.com/trellis-project/trellis/internal/fieldmanager"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// The replicas paths of /scale writes are upstream's, checked against
// its registry's own tables.
func TestReplicasPathsAreUpstreams(t *testing.T) {
	want := map[schema.GroupVersionResource]managedfields.ResourcePathMappings{
		{Group: "apps", Version: "v1", Resource: "deployments"}:  deploymentstorage.ReplicasPathMappings(),
		{Group: "apps", Version: "v1", Resource: "replicasets"}:  replicasetstorage.ReplicasPathMappings(),
		{Group: "apps", Version: "v1", Resource: "statefulsets"}: statefulsetstorage.ReplicasPathMappings(),
		{Version: "v1", Resource: "replicationcontrollers"}:      rcstorage.ReplicasPathMappings(),
	}
	scalable := 0
	for _, d := range builtin.Descriptors() {
		if !d.HasSubresource("scale") {
			continue
		}
		scalable++
		gvr := schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource}
		s, ok := d.Strategy.(fieldmanager.ScaleStrategy)
		if !ok {
			t.Errorf("%v serves /scale without replicas paths", gvr)
			continue
		}
		if got := s.ReplicasPaths(); !reflect.DeepEqual(got, want[gvr]) {
			t.Errorf("%v: replicas paths %v, upstream's %v", gvr, got, want[gvr])
		}
	}
	if scalable != len(want) {
		t.Errorf("%d kinds serve /scale, upstream %d", scalable, len(want))
	}
}
