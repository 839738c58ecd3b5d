package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	rbachelpers "k8s.io/component-helpers/auth/rbac/validation"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"
)

const rbacAPI = "/apis/rbac.authorization.k8s.io/v1"

// reconcileBootstrapPolicy creates the roles and bindings kube-apiserver
// creates at start (cluster-admin, admin, edit, view, system:* roles, the
// controller roles, and the kube-system / kube-public namespace roles), and
// adds missing rules to existing ClusterRoles unless they carry
// rbac.authorization.kubernetes.io/autoupdate: "false". Existing objects
// are listed once per collection and missing ones created concurrently, so
// that their commits share fsyncs: start-up stays fast.
func (s *Server) reconcileBootstrapPolicy(chain http.Handler) error {
	if _, ok := s.registry.Lookup(schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}); !ok {
		return nil // RBAC kinds not served
	}
	var work []bootstrapObject
	roles := append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...)
	existingRoles, err := s.listClusterRoles(chain)
	if err != nil {
		return err
	}
	for i := range roles {
		r := &roles[i]
		r.APIVersion, r.Kind = "rbac.authorization.k8s.io/v1", "ClusterRole"
		have, ok := existingRoles[r.Name]
		switch {
		case !ok:
			work = append(work, bootstrapObject{method: http.MethodPost, path: rbacAPI + "/clusterroles", obj: r})
		case have.Annotations[rbacv1.AutoUpdateAnnotationKey] == "false" || have.AggregationRule != nil:
		default:
			if covers, missing := rbachelpers.Covers(have.Rules, r.Rules); !covers {
				have.Rules = append(have.Rules, missing...)
				work = append(work, bootstrapObject{method: http.MethodPut, path: rbacAPI + "/clusterroles/" + r.Name, obj: have})
			}
		}
	}
	existing, err := s.listNames(chain, rbacAPI+"/clusterrolebindings")
	if err != nil {
		return err
	}
	bindings := append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...)
	for i := range bindings {
		b := &bindings[i]
		b.APIVersion, b.Kind = "rbac.authorization.k8s.io/v1", "ClusterRoleBinding"
		if !existing["/"+b.Name] {
			work = append(work, bootstrapObject{method: http.MethodPost, path: rbacAPI + "/clusterrolebindings", obj: b})
		}
	}
	if existing, err = s.listNames(chain, rbacAPI+"/roles"); err != nil {
		return err
	}
	for ns, nsRoles := range bootstrappolicy.NamespaceRoles() {
		for i := range nsRoles {
			r := &nsRoles[i]
			r.APIVersion, r.Kind = "rbac.authorization.k8s.io/v1", "Role"
			if !existing[ns+"/"+r.Name] {
				work = append(work, bootstrapObject{method: http.MethodPost, path: rbacAPI + "/namespaces/" + ns + "/roles", obj: r})
			}
		}
	}
	if existing, err = s.listNames(chain, rbacAPI+"/rolebindings"); err != nil {
		return err
	}
	for ns, nsBindings := range bootstrappolicy.NamespaceRoleBindings() {
		for i := range nsBindings {
			b := &nsBindings[i]
			b.APIVersion, b.Kind = "rbac.authorization.k8s.io/v1", "RoleBinding"
			if !existing[ns+"/"+b.Name] {
				work = append(work, bootstrapObject{method: http.MethodPost, path: rbacAPI + "/namespaces/" + ns + "/rolebindings", obj: b})
			}
		}
	}
	return s.runBootstrap(chain, work)
}

type bootstrapObject struct {
	method, path string
	obj          any
}

// runBootstrap sends the writes from a few goroutines; a conflict means
// another replica got there first.
func (s *Server) runBootstrap(chain http.Handler, work []bootstrapObject) error {
	errs := make(chan error, len(work))
	next := make(chan bootstrapObject)
	var wg sync.WaitGroup
	for range min(16, len(work)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range next {
				body, err := json.Marshal(w.obj)
				if err != nil {
					errs <- err
					continue
				}
				code, resp := s.loopbackDo(chain, w.method, w.path, body)
				if code >= 300 && code != http.StatusConflict {
					errs <- fmt.Errorf("%s %s: %d %s", w.method, w.path, code, resp)
				}
			}
		}()
	}
	for _, w := range work {
		next <- w
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

func (s *Server) listClusterRoles(chain http.Handler) (map[string]*rbacv1.ClusterRole, error) {
	code, body := s.loopbackDo(chain, http.MethodGet, rbacAPI+"/clusterroles", nil)
	if code != http.StatusOK {
		return nil, fmt.Errorf("list clusterroles: %d %s", code, body)
	}
	var list rbacv1.ClusterRoleList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := make(map[string]*rbacv1.ClusterRole, len(list.Items))
	for i := range list.Items {
		r := &list.Items[i]
		r.APIVersion, r.Kind = "rbac.authorization.k8s.io/v1", "ClusterRole"
		out[r.Name] = r
	}
	return out, nil
}

// listNames returns "namespace/name" of every object in a collection.
func (s *Server) listNames(chain http.Handler, collection string) (map[string]bool, error) {
	code, body := s.loopbackDo(chain, http.MethodGet, collection, nil)
	if code != http.StatusOK {
		return nil, fmt.Errorf("list %s: %d %s", collection, code, body)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name, Namespace string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(list.Items))
	for _, it := range list.Items {
		out[it.Metadata.Namespace+"/"+it.Metadata.Name] = true
	}
	return out, nil
}
