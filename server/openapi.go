package server

import (
	"net/http"

	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/resource"
)

// openAPIHandler serves /openapi/v2 and /openapi/v3.
func openAPIHandler(reg *resource.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.WriteError(w, r, handler.NotFoundPath())
	})
}
