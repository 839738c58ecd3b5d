package server

import (
	"net/http"
	"strings"

	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"

	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/openapi"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// openAPIHandler serves /openapi/v2 and /openapi/v3: built-in kinds get
// the generated definitions of the k8s.io/api types, custom resources the
// schema their strategy provides (openapi.SchemaProvider).
func openAPIHandler(reg *resource.Registry) http.Handler {
	return openapi.New(reg, openapi.Config{
		Definitions: generatedopenapi.GetOpenAPIDefinitions,
		Scheme:      builtin.Scheme,
		Version:     strings.Split(Version.GitVersion, "-")[0],
		WriteError:  handler.WriteError,
	})
}
