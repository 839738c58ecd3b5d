package audit_test

import (
	"testing"

	"k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/trellis-project/trellis/internal/audit"
)

const testPolicy = `
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: ["watch"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps/status"]
- level: RequestResponse
  omitStages: ["ResponseStarted"]
  omitManagedFields: true
  userGroups: ["auditors"]
  namespaces: ["audited"]
- level: Request
  verbs: ["create", "update"]
  resources:
  - group: "apps"
    resources: ["deployments"]
    resourceNames: ["web"]
- level: Request
  resources:
  - group: "example.com"
    resources: ["*/scale"]
- level: Metadata
`

func TestPolicyMatching(t *testing.T) {
	p, err := audit.LoadPolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	alice := &user.DefaultInfo{Name: "alice", Groups: []string{"system:authenticated"}}
	auditor := &user.DefaultInfo{Name: "bob", Groups: []string{"auditors"}}
	proxy := &user.DefaultInfo{Name: "system:kube-proxy"}
	res := func(u user.Info, verb, group, resource, sub, ns, name string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: u, Verb: verb, ResourceRequest: true, APIGroup: group,
			APIVersion: "v1", Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	nonRes := func(u user.Info, path string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: u, Verb: "get", Path: path}
	}
	tests := []struct {
		name      string
		attrs     authorizer.AttributesRecord
		level     v1.Level
		omit      []v1.Stage
		omitMFlds bool
	}{
		{"user and verb match", res(proxy, "watch", "", "endpoints", "", "", ""), v1.LevelNone, nil, false},
		{"user matches, verb does not", res(proxy, "list", "", "endpoints", "", "", ""), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"non-resource URL wildcard", nonRes(alice, "/healthz/etcd"), v1.LevelNone, nil, false},
		{"non-resource URL exact", nonRes(alice, "/version"), v1.LevelNone, nil, false},
		{"non-resource URL not listed", nonRes(alice, "/metrics"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"secrets at Metadata even for auditors", res(auditor, "get", "", "secrets", "", "audited", "s"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"subresource named", res(alice, "update", "", "configmaps", "status", "x", "c"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"group and namespace", res(auditor, "create", "", "configmaps", "", "audited", ""), v1.LevelRequestResponse, []v1.Stage{v1.StageRequestReceived, v1.StageResponseStarted}, true},
		{"group, other namespace", res(auditor, "create", "", "configmaps", "", "other", ""), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"resource name matches", res(alice, "update", "apps", "deployments", "", "x", "web"), v1.LevelRequest, []v1.Stage{v1.StageRequestReceived}, false},
		{"resource name differs", res(alice, "update", "apps", "deployments", "", "x", "db"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"verb not listed", res(alice, "delete", "apps", "deployments", "", "x", "web"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"wrong group", res(alice, "update", "", "deployments", "", "x", "web"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
		{"any resource's scale", res(alice, "update", "example.com", "widgets", "scale", "x", "w"), v1.LevelRequest, []v1.Stage{v1.StageRequestReceived}, false},
		{"not the scale subresource", res(alice, "update", "example.com", "widgets", "", "x", "w"), v1.LevelMetadata, []v1.Stage{v1.StageRequestReceived}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Evaluate(tt.attrs)
			if got.Level != tt.level {
				t.Errorf("level %s, want %s", got.Level, tt.level)
			}
			if tt.level == v1.LevelNone {
				return
			}
			if !sameStages(got.OmitStages, tt.omit) {
				t.Errorf("omitStages %v, want %v", got.OmitStages, tt.omit)
			}
			if got.OmitManagedFields != tt.omitMFlds {
				t.Errorf("omitManagedFields %v, want %v", got.OmitManagedFields, tt.omitMFlds)
			}
		})
	}
}

func sameStages(a, b []v1.Stage) bool {
	set := map[v1.Stage]bool{}
	for _, s := range a {
		set[s] = true
	}
	for _, s := range b {
		if !set[s] {
			return false
		}
		delete(set, s)
	}
	return len(set) == 0
}

func TestLoadPolicyRejectsInvalid(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown level": "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n",
		"no rules":      "apiVersion: audit.k8s.io/v1\nkind: Policy\n",
		"bad stage":     "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Sometime]\nrules:\n- level: Metadata\n",
		"wrong kind":    "apiVersion: audit.k8s.io/v1\nkind: Event\n",
	} {
		if _, err := audit.LoadPolicy([]byte(doc)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
