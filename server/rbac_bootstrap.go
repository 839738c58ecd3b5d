package server

import (
	"encoding/json"
	"fmt"
	"net/http"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	rbachelpers "k8s.io/component-helpers/auth/rbac/validation"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

const rbacAPI = "/apis/rbac.authorization.k8s.io/v1"

// reconcileBootstrapPolicy creates the roles and bindings kube-apiserver
// creates at start (cluster-admin, admin, edit, view, system:* roles, the
// controller roles, and the kube-system / kube-public namespace roles), and
// adds missing rules to existing ones unless they carry
// rbac.authorization.kubernetes.io/autoupdate: "false".
func (s *Server) reconcileBootstrapPolicy(chain http.Handler) error {
	if _, ok := s.registry.Lookup(schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}); !ok {
		return nil // RBAC kinds not served
	}
	roles := append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...)
	for i := range roles {
		r := &roles[i]
		r.APIVersion, r.Kind = "rbac.authorization.k8s.io/v1", "ClusterRole"
		if err := s.ensureRBACObject(chain, rbacAPI+"/clusterroles", r.Name, r, func(existing []byte) (any, bool, error) {
			var have rbacv1.ClusterRole
			if err := json.Unmarshal(existing, &have); err != nil {
				return nil, false, err
			}
			if have.Annotations[rbacv1.AutoUpdateAnnotationKey] == "false" || have.AggregationRule != nil {
				return nil, false, nil
			}
			if covers, missing := rbachelpers.Covers(have.Rules, r.Rules); !covers {
				have.Rules = append(have.Rules, missing...)
				return &have, true, nil
			}
			return nil, false, nil
		}); err != nil {
			return err
		}
	}
	bindings := append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...)
	for i := range bindings {
		b := &bindings[i]
		b.APIVersion, b.Kind = "rbac.authorization.k8s.io/v1", "ClusterRoleBinding"
		if err := s.ensureRBACObject(chain, rbacAPI+"/clusterrolebindings", b.Name, b, nil); err != nil {
			return err
		}
	}
	for ns, nsRoles := range bootstrappolicy.NamespaceRoles() {
		for i := range nsRoles {
			r := &nsRoles[i]
			r.APIVersion, r.Kind = "rbac.authorization.k8s.io/v1", "Role"
			if err := s.ensureRBACObject(chain, rbacAPI+"/namespaces/"+ns+"/roles", r.Name, r, nil); err != nil {
				return err
			}
		}
	}
	for ns, nsBindings := range bootstrappolicy.NamespaceRoleBindings() {
		for i := range nsBindings {
			b := &nsBindings[i]
			b.APIVersion, b.Kind = "rbac.authorization.k8s.io/v1", "RoleBinding"
			if err := s.ensureRBACObject(chain, rbacAPI+"/namespaces/"+ns+"/rolebindings", b.Name, b, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureRBACObject creates obj under collection; if it exists, update may
// return a replacement to write.
func (s *Server) ensureRBACObject(chain http.Handler, collection, name string, obj any, update func(existing []byte) (any, bool, error)) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	code, resp := s.loopbackDo(chain, http.MethodPost, collection, body)
	switch {
	case code == http.StatusCreated:
		return nil
	case code != http.StatusConflict:
		return fmt.Errorf("create %s/%s: %d %s", collection, name, code, resp)
	case update == nil:
		return nil
	}
	code, existing := s.loopbackDo(chain, http.MethodGet, collection+"/"+name, nil)
	if code != http.StatusOK {
		return fmt.Errorf("get %s/%s: %d %s", collection, name, code, existing)
	}
	replacement, changed, err := update(existing)
	if err != nil || !changed {
		return err
	}
	body, err = json.Marshal(replacement)
	if err != nil {
		return err
	}
	if code, resp := s.loopbackDo(chain, http.MethodPut, collection+"/"+name, body); code != http.StatusOK {
		return fmt.Errorf("update %s/%s: %d %s", collection, name, code, resp)
	}
	return nil
}
