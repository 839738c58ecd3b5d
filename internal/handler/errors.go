package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-project/trellis/internal/audit"
	"github.com/trellis-project/trellis/internal/request"
	"github.com/trellis-project/trellis/internal/resource"
)

// WriteError writes err as a Kubernetes Status object. Errors that are not
// already API statuses become 500s whose message does not leak internals
// beyond the error text.
func WriteError(w http.ResponseWriter, r *http.Request, err error) { writeError(w, r, err) }

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		st = apierrors.NewInternalError(err)
	}
	status := st.Status()
	status.Kind, status.APIVersion = "Status", "v1"
	if status.Status == "" {
		status.Status = metav1.StatusFailure
	}
	if status.Code == 0 {
		status.Code = http.StatusInternalServerError
	}
	if d := status.Details; d != nil && d.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfterSeconds)))
	}
	if r != nil {
		audit.From(r.Context()).LogResponseStatus(&status)
	}
	body, _ := json.Marshal(&status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(status.Code))
	w.Write(body)
	w.Write([]byte("\n"))
}

// NotFoundPath is kube-apiserver's answer for a path it does not serve.
func NotFoundPath() error { return notFoundPath() }

func notFoundPath() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Message: "the server could not find the requested resource",
		Reason:  metav1.StatusReasonNotFound,
		Details: &metav1.StatusDetails{},
		Code:    http.StatusNotFound,
	}}
}

func methodNotSupported(d *resource.Descriptor, info *request.Info) error {
	gr := d.GroupResource()
	if info.Subresource != "" {
		gr.Resource += "/" + info.Subresource
	}
	return apierrors.NewMethodNotSupported(gr, info.Verb)
}

// tooLargeResourceVersion is the 504 client-go's reflector recognises as
// "the cache has not caught up yet, retry".
func tooLargeResourceVersion(err error) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusGatewayTimeout,
		Reason:  metav1.StatusReasonTimeout,
		Message: fmt.Sprintf("Too large resource version: %v", err),
		Details: &metav1.StatusDetails{
			Causes:            []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}},
			RetryAfterSeconds: 1,
		},
	}}
}

func badRequest(format string, args ...any) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}
