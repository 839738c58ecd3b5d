package request_test

import (
	"net/http/httptest"
	"testing"

	"github.com/trellis-project/trellis/internal/request"
)

func TestLongRunningAsKubeAPIServer(t *testing.T) {
	cases := []struct {
		method, target string
		want           bool
	}{
		{"GET", "/api/v1/namespaces/ns/pods?watch=true", true},
		{"GET", "/api/v1/namespaces/ns/pods/p/log", true},
		{"POST", "/api/v1/namespaces/ns/pods/p/exec", true},
		{"GET", "/api/v1/namespaces/ns/pods/p/attach", true},
		{"POST", "/api/v1/namespaces/ns/pods/p/portforward", true},
		{"GET", "/api/v1/namespaces/ns/services/s/proxy", true},
		{"GET", "/debug/pprof/profile", true},
		{"GET", "/api/v1/namespaces/ns/pods", false},
		{"GET", "/api/v1/namespaces/ns/pods/p/status", false},
		{"POST", "/api/v1/namespaces/ns/pods/p/eviction", false},
		{"GET", "/healthz", false},
		{"GET", "/apis/apps/v1", false},
	}
	for _, tc := range cases {
		info := request.Parse(httptest.NewRequest(tc.method, tc.target, nil))
		if got := info.LongRunning(); got != tc.want {
			t.Errorf("%s %s: LongRunning() = %v, want %v", tc.method, tc.target, got, tc.want)
		}
	}
}
