package server

import (
	"runtime"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"

	"github.com/trellis-project/trellis/internal/fieldmanager"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// builtinFieldTypes describes the built-in kinds to the field managers of
// every server in the process: the generated definitions and the scheme
// are process-wide, and loading the definitions costs about 20 ms, paid
// once, by the first write.
var builtinFieldTypes = sync.OnceValue(func() *fieldmanager.BuiltinTypes {
	var kinds []schema.GroupVersionKind
	for _, d := range append(builtin.Descriptors(), builtin.Reviews(builtin.Reviewers{})...) {
		kinds = append(kinds, d.GroupVersionKind())
	}
	return fieldmanager.NewBuiltinTypes(generatedopenapi.GetOpenAPIDefinitions, builtin.Scheme, kinds)
})

// fieldManagers records metadata.managedFields for the server's resources.
func (s *Server) fieldManagers() *fieldmanager.Cache {
	return fieldmanager.NewCache(builtinFieldTypes(), s.registry)
}

// userAgent is the User-Agent of an in-process client acting as component,
// in client-go's form. Its first segment is the field manager its writes
// are recorded under, so objects the server writes itself carry the
// managers kube-apiserver's do ("kube-apiserver" for the system
// namespaces and CRD status, "kube-controller-manager" for namespace
// finalization).
func userAgent(component string) string {
	return component + "/" + Version.GitVersion + " (" + runtime.GOOS + "/" + runtime.GOARCH + ") kubernetes/" + Version.GitCommit
}
