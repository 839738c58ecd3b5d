package server_test

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/server"
	"github.com/trellis-project/trellis/trellistest"
)

// createWhenServable creates obj in namespace "default" of gvr, retrying
// until the resource is served, and returns the time since start.
func createWhenServable(b *testing.B, dyn dynamic.Interface, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, start time.Time) time.Duration {
	b.Helper()
	ctx := context.Background()
	r := dyn.Resource(gvr).Namespace("default")
	for {
		_, err := r.Create(ctx, obj, metav1.CreateOptions{})
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			b.Fatalf("%s never servable: %v", gvr, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// createFirstFleet creates a Fleet in group as soon as it is served.
func createFirstFleet(b *testing.B, dyn dynamic.Interface, group string, start time.Time) time.Duration {
	b.Helper()
	return createWhenServable(b, dyn, fleetGVR(group, "v1"), fleet(group, "first"), start)
}

func createCRD(b *testing.B, cfg *rest.Config, crd *apiextensionsv1.CustomResourceDefinition) {
	b.Helper()
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(context.Background(), crd, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// waitEstablished waits until the CRD's Established condition is stored.
func waitEstablished(b *testing.B, cfg *rest.Config, name string) {
	b.Helper()
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("CRD %s not Established after 30s", name)
}

// BenchmarkCRDServable measures the time from the create call of a CRD to
// the first successful create of an object of it: what an operator's
// installer (kubectl apply, Helm) waits for. Each op installs a new CRD under its own group.
// crd=fleet is the large Fleet CRD (three versions of a pod-template
// schema, CEL rules); crd=widget is the small Widget CRD of crd_test.go.
func BenchmarkCRDServable(b *testing.B) {
	for _, tc := range []struct {
		name string
		crd  func(group string) *apiextensionsv1.CustomResourceDefinition
		gvr  func(group string) schema.GroupVersionResource
		obj  func(group string) *unstructured.Unstructured
	}{
		{"widget", func(group string) *apiextensionsv1.CustomResourceDefinition {
			crd := widgetCRD()
			crd.Name, crd.Spec.Group, crd.Spec.Names.ShortNames = "widgets."+group, group, nil
			return crd
		}, func(group string) schema.GroupVersionResource {
			return schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}
		}, func(group string) *unstructured.Unstructured {
			w := widget("first", map[string]any{"color": "red"})
			w.SetAPIVersion(group + "/v1")
			return w
		}},
		{"fleet", fleetCRD, func(group string) schema.GroupVersionResource { return fleetGVR(group, "v1") },
			func(group string) *unstructured.Unstructured { return fleet(group, "first") }},
	} {
		b.Run("crd="+tc.name, func(b *testing.B) {
			cfg := trellistest.Start(b)
			dyn := dynamic.NewForConfigOrDie(cfg)
			var total, worst time.Duration
			var each []time.Duration
			crds := dyn.Resource(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
			for i := 0; b.Loop(); i++ {
				group := fmt.Sprintf("g%d.servable.example.com", i)
				// Built before the clock starts. Sent as kubectl apply and
				// Helm send it, and as kbench measured kube-apiserver: an
				// unstructured object through the dynamic client.
				b.StopTimer()
				crd, err := runtime.DefaultUnstructuredConverter.ToUnstructured(tc.crd(group))
				if err != nil {
					b.Fatal(err)
				}
				obj := tc.obj(group)
				b.StartTimer()
				start := time.Now()
				if _, err := crds.Create(context.Background(), &unstructured.Unstructured{Object: crd}, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				d := createWhenServable(b, dyn, tc.gvr(group), obj, start)
				total += d
				worst = max(worst, d)
				each = append(each, d)
				// Each install is measured on a quiet server, as a user
				// installing one CRD sees it: let this one's status
				// updates finish before the next starts.
				b.StopTimer()
				waitEstablished(b, cfg, tc.crd(group).Name)
				time.Sleep(200 * time.Millisecond) // the controller's and informers' follow-up work
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-servable")
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
			slices.Sort(each)
			b.ReportMetric(float64(each[len(each)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// writeHeapProfile writes the live heap to path (nothing when path is
// empty), to see what an installed CRD keeps before any object exists.
func writeHeapProfile(b *testing.B, path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRSSPerLargeCRD installs 500 copies of the large Fleet CRD under
// distinct groups and reports the growth of the process's RSS (server and
// client share the process) and Go heap per CRD: once all are Established,
// and again after one Fleet has been created in each, which builds whatever
// a CRD's validators and handlers build lazily. It ignores b.N; run it with
// -benchtime 1x. TRELLIS_BENCH_CRDS sets another count (-short: 5),
// TRELLIS_BENCH_SCHEMA_CACHE_MB another --crd-schema-cache-size.
func BenchmarkRSSPerLargeCRD(b *testing.B) {
	n := benchSize(b, "TRELLIS_BENCH_CRDS", 500, 5)
	var opts []trellistest.Option
	if s := os.Getenv("TRELLIS_BENCH_SCHEMA_CACHE_MB"); s != "" {
		mb, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, trellistest.WithConfig(func(c *server.Config) { c.CRDSchemaCacheMB = mb }))
	}
	cfg := trellistest.Start(b, opts...)
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling
	ext := apiextensionsclient.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx := context.Background()
	// Warm up the paths a CRD install and an object create use, so the
	// baseline holds their one-time costs.
	createCRD(b, cfg, fleetCRD("warmup.rss.example.com"))
	createFirstFleet(b, dyn, "warmup.rss.example.com", time.Now())
	before := sampleMemory(b)
	start := time.Now()
	for i := range n {
		createCRD(b, cfg, fleetCRD(fmt.Sprintf("g%d.rss.example.com", i)))
	}
	for {
		list, err := ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		established := 0
		for _, crd := range list.Items {
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established++
				}
			}
		}
		if established >= n+1 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("%d of %d CRDs Established after 10 minutes", established, n+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	installed := time.Since(start)
	afterInstall := sampleMemory(b)
	writeHeapProfile(b, os.Getenv("TRELLIS_BENCH_HEAP_INSTALLED"))
	for i := range n {
		createFirstFleet(b, dyn, fmt.Sprintf("g%d.rss.example.com", i), time.Now())
	}
	afterUse := sampleMemory(b)
	per := func(a, z float64) float64 { return (z - a) / float64(n) }
	b.ReportMetric(per(before.rssMB, afterInstall.rssMB), "rss-MB/crd")
	b.ReportMetric(per(before.heapMB, afterInstall.heapMB), "heap-MB/crd")
	b.ReportMetric(per(before.rssMB, afterUse.rssMB), "rss-MB/crd-used")
	b.ReportMetric(per(before.heapMB, afterUse.heapMB), "heap-MB/crd-used")
	b.ReportMetric(installed.Seconds(), "s-to-install")
	b.Logf("%d CRDs: RSS %.0f → %.0f → %.0f MiB, heap in use %.0f → %.0f → %.0f MiB (baseline → Established → one object each); installed in %v",
		n, before.rssMB, afterInstall.rssMB, afterUse.rssMB, before.heapMB, afterInstall.heapMB, afterUse.heapMB, installed)
}

// BenchmarkCreateLargeCustomResource creates Fleets one at a time through
// the whole request path. schema=full validates, defaults and prunes with
// the large schema and runs its CEL rules; schema=opaque stores the same
// bytes under a spec that preserves unknown fields, so the difference
// between the two is the schema's cost per object.
func BenchmarkCreateLargeCustomResource(b *testing.B) {
	for _, tc := range []struct {
		name   string
		opaque bool
	}{{"full", false}, {"opaque", true}} {
		b.Run("schema="+tc.name, func(b *testing.B) {
			cfg := trellistest.Start(b)
			group := "validation.example.com"
			crd := fleetCRD(group)
			if tc.opaque {
				for i := range crd.Spec.Versions {
					crd.Spec.Versions[i].Schema.OpenAPIV3Schema = &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: ptr.To(true),
					}
				}
			}
			createCRD(b, cfg, crd)
			dyn := dynamic.NewForConfigOrDie(cfg)
			createFirstFleet(b, dyn, group, time.Now())
			r := dyn.Resource(fleetGVR(group, "v1")).Namespace("default")
			ctx := context.Background()
			obj := largeFleet(group)
			benchCreates(b, 1, func(i int) error {
				obj.SetName(fmt.Sprintf("f-%07d", i))
				_, err := r.Create(ctx, obj, metav1.CreateOptions{})
				return err
			})
		})
	}
}

// largeFleet is a Fleet with 4 containers of 4 ports, 8 env vars and
// probes each, a sidecar init container and volumes: about 6 KB of JSON.
func largeFleet(group string) *unstructured.Unstructured {
	f := fleet(group, "x")
	var containers []any
	for c := range 4 {
		var ports, env []any
		for p := range 4 {
			ports = append(ports, map[string]any{"name": fmt.Sprintf("p%d", p), "containerPort": int64(8080 + p), "protocol": "TCP"})
		}
		for e := range 8 {
			env = append(env, map[string]any{"name": fmt.Sprintf("VAR_%d", e), "value": strings.Repeat("v", 24)})
		}
		probe := map[string]any{"httpGet": map[string]any{"path": "/ready", "port": int64(8080)}, "periodSeconds": int64(5)}
		containers = append(containers, map[string]any{
			"name": fmt.Sprintf("c%d", c), "image": "registry.example/app:1.2.3",
			"args": []any{"--port=8080", "--log-level=info"}, "ports": ports, "env": env,
			"resources":      map[string]any{"limits": map[string]any{"cpu": "1", "memory": "1Gi"}, "requests": map[string]any{"cpu": "100m", "memory": "256Mi"}},
			"readinessProbe": probe, "livenessProbe": probe,
			"volumeMounts":    []any{map[string]any{"name": "data", "mountPath": fmt.Sprintf("/data/%d", c)}},
			"securityContext": map[string]any{"runAsNonRoot": true, "capabilities": map[string]any{"drop": []any{"ALL"}}},
		})
	}
	spec := f.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	spec["containers"] = containers
	spec["initContainers"] = []any{map[string]any{"name": "init", "image": "registry.example/init:1", "command": []any{"sh", "-c", "true"}}}
	spec["volumes"] = []any{map[string]any{"name": "data", "emptyDir": map[string]any{"sizeLimit": "1Gi"}}}
	spec["nodeSelector"] = map[string]any{"kubernetes.io/os": "linux"}
	f.Object["spec"].(map[string]any)["config"] = map[string]any{"feature": map[string]any{"enabled": true, "level": int64(3)}}
	return f
}
