package builtin

import (
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	_ "k8s.io/kubernetes/pkg/apis/storagemigration/install"
	"k8s.io/kubernetes/pkg/registry/storagemigration/storagemigration"
)

// storageMigrationKinds are stored and served; no migrator rewrites
// objects yet.
func storageMigrationKinds() []kindDef {
	return inGroup(storagemigrationv1.SchemeGroupVersion,
		kindDef{kind: "StorageVersionMigration", resource: "storageversionmigrations",
			rules: storagemigration.Strategy, subs: status(storagemigration.StatusStrategy)},
	)
}
