package builtin

import (
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/apis/storage"
	_ "k8s.io/kubernetes/pkg/apis/storage/install"
	"k8s.io/kubernetes/pkg/registry/storage/csidriver"
	"k8s.io/kubernetes/pkg/registry/storage/csinode"
	"k8s.io/kubernetes/pkg/registry/storage/csistoragecapacity"
	"k8s.io/kubernetes/pkg/registry/storage/storageclass"
	"k8s.io/kubernetes/pkg/registry/storage/volumeattachment"
	"k8s.io/kubernetes/pkg/registry/storage/volumeattributesclass"
)

// storageKinds are stored and served; no provisioner or attacher acts on
// them yet.
func storageKinds() []kindDef {
	return inGroup(storagev1.SchemeGroupVersion,
		kindDef{kind: "StorageClass", resource: "storageclasses", short: []string{"sc"}, returnDeleted: true,
			rules: storageclass.Strategy},
		kindDef{kind: "VolumeAttachment", resource: "volumeattachments", returnDeleted: true,
			rules: volumeattachment.Strategy, subs: status(volumeattachment.StatusStrategy)},
		kindDef{kind: "CSIDriver", resource: "csidrivers", returnDeleted: true, rules: csidriver.Strategy},
		kindDef{kind: "CSINode", resource: "csinodes", returnDeleted: true,
			rules: csinode.Strategy, subs: status(csinode.StatusStrategy)},
		kindDef{kind: "CSIStorageCapacity", resource: "csistoragecapacities", namespaced: true,
			rules: csistoragecapacity.Strategy, table: rest.NewDefaultTableConvertor(storage.Resource("csistoragecapacities"))},
		kindDef{kind: "VolumeAttributesClass", resource: "volumeattributesclasses", short: []string{"vac"}, returnDeleted: true,
			rules: volumeattributesclass.Strategy},
	)
}
