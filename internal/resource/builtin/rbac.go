package builtin

import (
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/kubernetes/pkg/apis/rbac"
	_ "k8s.io/kubernetes/pkg/apis/rbac/install"
	"k8s.io/kubernetes/pkg/registry/rbac/clusterrole"
	"k8s.io/kubernetes/pkg/registry/rbac/clusterrolebinding"
	"k8s.io/kubernetes/pkg/registry/rbac/role"
	"k8s.io/kubernetes/pkg/registry/rbac/rolebinding"
)

// rbacKinds are the RBAC objects. Roles and ClusterRoles print kube-
// apiserver's default columns.
func rbacKinds() []kindDef {
	return inGroup(rbacv1.SchemeGroupVersion,
		kindDef{kind: "Role", resource: "roles", namespaced: true,
			rules: role.Strategy, table: rest.NewDefaultTableConvertor(rbac.Resource("roles"))},
		kindDef{kind: "RoleBinding", resource: "rolebindings", namespaced: true, rules: rolebinding.Strategy},
		kindDef{kind: "ClusterRole", resource: "clusterroles",
			rules: clusterrole.Strategy, table: rest.NewDefaultTableConvertor(rbac.Resource("clusterroles"))},
		kindDef{kind: "ClusterRoleBinding", resource: "clusterrolebindings", rules: clusterrolebinding.Strategy},
	)
}
