package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	fcrequest "k8s.io/apiserver/pkg/util/flowcontrol/request"

	"github.com/trellis-project/trellis/internal/auth"
	"github.com/trellis-project/trellis/internal/request"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
	"github.com/trellis-project/trellis/internal/store/bolt"
)

// BenchmarkConcurrencyLimitFilter prices the concurrency-limit stage of
// the request path on its own: a GET of one ConfigMap by an ordinary
// user (classified by the bootstrap FlowSchemas as global-default, the
// last but one of them: 128 queues) through API Priority and Fairness,
// through the plain in-flight limits, and through nothing; and by a
// member of system:masters (exempt) through API Priority and Fairness.
// The handler behind it answers 200 at once.
//
//	go test -run '^$' -bench ConcurrencyLimitFilter -benchmem ./server/
func BenchmarkConcurrencyLimitFilter(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	alice := &auth.User{Name: "alice", Groups: []string{"system:authenticated"}}
	admin := &auth.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}
	newRequestAs := func(u *auth.User) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/default/configmaps/cm", nil)
		ctx := request.WithInfo(r.Context(), request.Parse(r))
		return r.WithContext(auth.WithUser(ctx, u))
	}
	newRequest := func() *http.Request { return newRequestAs(alice) }
	s := &Server{
		cfg:      Config{MaxRequestsInFlight: 800, MaxMutatingRequestsInFlight: 400, RequestTimeout: time.Minute},
		metrics:  newMetrics(),
		registry: resource.NewRegistry(),
		caches:   newCaches(context.Background(), nil),
	}
	stop := make(chan struct{})
	defer close(stop)
	var objs []runtime.Object
	for i, pl := range slices.Concat(bootstrap.MandatoryPriorityLevelConfigurations, bootstrap.SuggestedPriorityLevelConfigurations) {
		pl = pl.DeepCopy()
		pl.UID = types.UID(fmt.Sprintf("pl-%d", i))
		objs = append(objs, pl)
	}
	for i, fs := range slices.Concat(bootstrap.MandatoryFlowSchemas, bootstrap.SuggestedFlowSchemas) {
		fs = fs.DeepCopy()
		fs.UID = types.UID(fmt.Sprintf("fs-%d", i))
		objs = append(objs, fs)
	}
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	s.apf = s.newPriorityAndFairness(factory, client.FlowcontrolV1())
	factory.Start(stop)
	go s.apf.run(stop)
	apf := s.apf.filter(ok)
	// Wait until the controller classifies by the objects, not by the
	// mandatory ones it starts with.
	for deadline := time.Now().Add(10 * time.Second); ; {
		w := httptest.NewRecorder()
		apf.ServeHTTP(w, newRequest())
		if w.Header().Get("X-Kubernetes-PF-FlowSchema-UID") == "fs-10" { // global-default
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("never classified as global-default: %v", w.Header())
		}
		time.Sleep(time.Millisecond)
	}

	for _, tc := range []struct {
		name string
		h    http.Handler
		user *auth.User
	}{
		{"none", ok, alice},
		{"max-in-flight", s.withInFlightLimit(ok), alice},
		{"priority-and-fairness", apf, alice},
		{"priority-and-fairness/exempt", apf, admin},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRequestAs(tc.user)
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := newRequestAs(tc.user)
				for pb.Next() {
					tc.h.ServeHTTP(httptest.NewRecorder(), r)
				}
			})
		})
	}
}

// The list work estimator learns a resource's object count and average
// size from its watch cache; a resource without a running cache is
// unknown (priced at the minimum), as upstream before its first count.
func TestObjectStatsFromWatchCaches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backend, err := bolt.Open(bolt.Options{Dir: t.TempDir(), CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	s := &Server{registry: resource.NewRegistry(), caches: newCaches(ctx, backend)}
	defer s.caches.close()
	builtin.Register(s.registry)
	for i := range 3 {
		v := fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-%d","namespace":"default"}}`, i)
		if _, err := backend.Create(ctx, fmt.Sprintf("/registry/configmaps/default/cm-%d", i), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.objectStats("configmaps"); err != fcrequest.ObjectCountNotFoundErr {
		t.Errorf("configmaps before their cache runs: %v, want ObjectCountNotFoundErr", err)
	}
	ch, err := s.caches.forPrefix("/registry/configmaps/")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := ch.WaitReady(wctx); err != nil {
		t.Fatalf("cache not ready: %v (%v)", err, ch.LastError())
	}
	st, err := s.objectStats("configmaps")
	if err != nil || st.ObjectCount != 3 || st.EstimatedAverageObjectSizeBytes < 80 {
		t.Errorf("configmaps: %+v, %v; want 3 objects of their stamped size", st, err)
	}
	if _, err := s.objectStats("deployments.apps"); err != fcrequest.ObjectCountNotFoundErr {
		t.Errorf("deployments.apps without a cache: %v, want ObjectCountNotFoundErr", err)
	}
	if _, err := s.objectStats("nothings.example.com"); err != fcrequest.ObjectCountNotFoundErr {
		t.Errorf("an unknown resource: %v, want ObjectCountNotFoundErr", err)
	}
}
