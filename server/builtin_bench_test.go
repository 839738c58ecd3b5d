package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/trellis-project/trellis/trellistest"
)

// Benchmarks of built-in kinds (issue 8): creates and lists of
// Deployments and ConfigMaps in each wire encoding, and the memory 10,000
// Deployments take.

const protobufMediaType = "application/vnd.kubernetes.protobuf"

// wireEncodings are the client set-ups the built-in benchmarks compare.
// protobuf sends and accepts only protobuf; json sends and accepts only
// JSON; default is client-go's default for typed clients: protobuf
// bodies, Accept "application/vnd.kubernetes.protobuf,application/json",
// to which Trellis answers JSON (it prefers JSON, which it stores).
var wireEncodings = []string{"protobuf", "json", "default"}

// withEncoding returns a copy of cfg whose clients use encoding enc.
func withEncoding(cfg *rest.Config, enc string) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	switch enc {
	case "protobuf":
		cfg.ContentType, cfg.AcceptContentTypes = protobufMediaType, protobufMediaType
	case "json":
		cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
	case "default":
	default:
		panic("unknown encoding " + enc)
	}
	return cfg
}

// benchObjects is how many objects the list and memory benchmarks create:
// 10,000, or TRELLIS_BENCH_OBJECTS, or 200 under -short (a smoke run).
func benchObjects(b *testing.B) int { return benchSize(b, "TRELLIS_BENCH_OBJECTS", 10000, 200) }

// builtinKind is one built-in resource the benchmarks create and list.
type builtinKind struct {
	name   string // resource name, as in the URL
	prefix string // of the names of the objects the benchmarks create
	path   string // the namespaced collection of "default"
	// create creates object i in namespace "default".
	create func(ctx context.Context, cs kubernetes.Interface, i int) error
}

var builtinKinds = []builtinKind{
	{"deployments", "app-", "/apis/apps/v1/namespaces/default/deployments", func(ctx context.Context, cs kubernetes.Interface, i int) error {
		_, err := cs.AppsV1().Deployments("default").Create(ctx, benchDeployment(fmt.Sprintf("app-%06d", i)), metav1.CreateOptions{})
		return err
	}},
	{"configmaps", "cm-", "/api/v1/namespaces/default/configmaps", func(ctx context.Context, cs kubernetes.Interface, i int) error {
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, benchConfigMap(fmt.Sprintf("cm-%06d", i)), metav1.CreateOptions{})
		return err
	}},
}

// BenchmarkBuiltinCreate creates Deployments (about 3 KB) and ConfigMaps
// (about 1 KB) from 16 goroutines through the whole request path into the
// durable store, with each client encoding. Each run starts its own server.
func BenchmarkBuiltinCreate(b *testing.B) {
	for _, k := range builtinKinds {
		for _, enc := range wireEncodings {
			b.Run(fmt.Sprintf("kind=%s/enc=%s", k.name, enc), func(b *testing.B) {
				cs := kubernetes.NewForConfigOrDie(withEncoding(trellistest.Start(b), enc))
				ctx := context.Background()
				benchCreates(b, 16, func(i int) error { return k.create(ctx, cs, i) })
			})
		}
	}
}

// BenchmarkBuiltinList lists all of benchObjects Deployments or ConfigMaps
// in namespace "default" through the whole request path (TLS, HTTP/2,
// authentication, watch cache), unpaginated (whole) and in pages of 500
// (one op is the whole pass), in each encoding. The client reads the raw
// body and does not decode it, so the figures are the server's and the
// transport's. It reports ms/list, MB/list (response bytes), objects/s,
// and cpu-ms/list (the process's CPU, which here is mostly the server's).
func BenchmarkBuiltinList(b *testing.B) {
	n := benchObjects(b)
	for _, k := range builtinKinds {
		b.Run("kind="+k.name, func(b *testing.B) {
			cfg := trellistest.Start(b)
			cs := kubernetes.NewForConfigOrDie(cfg)
			ctx := context.Background()
			concurrently(b, n, 16, func(i int) error { return k.create(ctx, cs, i) })
			// The namespace may hold objects of the kind that the benchmark
			// did not create (the kube-root-ca.crt ConfigMap).
			all := n + countOthers(b, cs, k)
			for _, enc := range wireEncodings {
				rc := kubernetes.NewForConfigOrDie(withEncoding(cfg, enc)).CoreV1().RESTClient()
				accept := withEncoding(cfg, enc).AcceptContentTypes
				if accept == "" {
					accept = protobufMediaType + ",application/json" // client-go's typed default
				}
				for _, limit := range []int{0, 500} {
					name := "whole"
					if limit > 0 {
						name = fmt.Sprintf("pages=%d", limit)
					}
					b.Run(fmt.Sprintf("enc=%s/%s", enc, name), func(b *testing.B) {
						benchListPasses(b, rc, k.path, accept, limit, all)
					})
				}
			}
		})
	}
}

// countOthers counts the objects of kind k in namespace "default" whose
// names are not of the benchmark's pattern.
func countOthers(b *testing.B, cs kubernetes.Interface, k builtinKind) int {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath(k.path).SetHeader("Accept", "application/json").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var list struct {
		Items []metav1.PartialObjectMetadata `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		b.Fatal(err)
	}
	others := 0
	for _, it := range list.Items {
		if !strings.HasPrefix(it.Name, k.prefix) {
			others++
		}
	}
	return others
}

// benchListPasses times b.N passes over the collection at path, each in
// pages of limit (0: one request). A first, untimed pass checks that the
// responses carry n objects in all; timed passes read only each page's
// continue token.
func benchListPasses(b *testing.B, rc rest.Interface, path, accept string, limit, n int) {
	ctx := context.Background()
	pass := func(count bool) (size int64, items int) {
		cont := ""
		for {
			req := rc.Get().AbsPath(path).SetHeader("Accept", accept)
			if limit > 0 {
				req = req.Param("limit", strconv.Itoa(limit))
			}
			if cont != "" {
				req = req.Param("continue", cont)
			}
			var ct string
			raw, err := req.Do(ctx).ContentType(&ct).Raw()
			if err != nil {
				b.Fatal(err)
			}
			size += int64(len(raw))
			page, err := readListPage(raw, ct, count)
			if err != nil {
				b.Fatal(err)
			}
			items += page.items
			if cont = page.cont; cont == "" {
				return size, items
			}
		}
	}
	if _, got := pass(true); got != n {
		b.Fatalf("listed %d objects, want %d", got, n)
	}
	var total int64
	cpu0 := processCPU(b)
	b.ResetTimer()
	for range b.N {
		size, _ := pass(false)
		total += size
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/list")
	b.ReportMetric(float64(total)/1e6/float64(b.N), "MB/list")
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "objects/s")
	reportCPUPerOp(b, cpu0, b.N, "cpu-ms/list", time.Millisecond)
}

type listPage struct {
	items int // counted only when asked
	cont  string
}

// readListPage reads a list response's continue token and, with count,
// its number of items, without decoding the items: the client's cost
// should not hide the server's.
func readListPage(raw []byte, contentType string, count bool) (listPage, error) {
	if strings.HasPrefix(contentType, protobufMediaType) {
		return readProtobufListPage(raw)
	}
	if !strings.HasPrefix(contentType, "application/json") {
		return listPage{}, fmt.Errorf("list answered in %q", contentType)
	}
	var page listPage
	if count {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return listPage{}, err
		}
		page.items = len(list.Items)
	}
	// kube-apiserver and Trellis write the list's metadata before its
	// items; stop reading there.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return listPage{}, err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return listPage{}, err
		}
		if key == "metadata" {
			var lm metav1.ListMeta
			if err := dec.Decode(&lm); err != nil {
				return listPage{}, err
			}
			page.cont = lm.Continue
			return page, nil
		}
		if key == "items" {
			return listPage{}, errors.New("list items before its metadata")
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return listPage{}, err
		}
	}
	return listPage{}, errors.New("list without metadata")
}

// readProtobufListPage walks the protobuf envelope (runtime.Unknown, whose
// field 2 is the list) and the list (field 1 ListMeta, field 2 one per
// item) without decoding the items.
func readProtobufListPage(raw []byte) (listPage, error) {
	body, ok := bytes.CutPrefix(raw, []byte("k8s\x00"))
	if !ok {
		return listPage{}, errors.New("no protobuf envelope prefix")
	}
	list, err := protoField(body, 2)
	if err != nil {
		return listPage{}, err
	}
	var page listPage
	for len(list) > 0 {
		num, typ, n := protowire.ConsumeTag(list)
		if n < 0 {
			return listPage{}, protowire.ParseError(n)
		}
		list = list[n:]
		if num == 2 {
			page.items++
		}
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(list)
			if n < 0 {
				return listPage{}, protowire.ParseError(n)
			}
			var lm metav1.ListMeta
			if err := lm.Unmarshal(v); err != nil {
				return listPage{}, err
			}
			page.cont = lm.Continue
		}
		n = protowire.ConsumeFieldValue(num, typ, list)
		if n < 0 {
			return listPage{}, protowire.ParseError(n)
		}
		list = list[n:]
	}
	return page, nil
}

// protoField returns the bytes of the first field num of a message.
func protoField(msg []byte, num protowire.Number) ([]byte, error) {
	for len(msg) > 0 {
		got, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		if got == num && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			return v, nil
		}
		n = protowire.ConsumeFieldValue(got, typ, msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	return nil, fmt.Errorf("no field %d", num)
}

// BenchmarkBuiltinMemory creates benchObjects Deployments in an in-process
// server and reports how much the process's RSS and Go heap in use (after
// a GC) grew per Deployment. The client shares the process, but keeps
// none of the objects: after the GC the heap growth is the server's
// (watch cache, informers, store), while RSS also holds whatever the Go
// runtime has not returned. BenchmarkServeMemory measures a trellis
// serve process instead. It ignores b.N; run it with -benchtime 1x.
func BenchmarkBuiltinMemory(b *testing.B) {
	n := benchObjects(b)
	cs := kubernetes.NewForConfigOrDie(trellistest.Start(b))
	ctx := context.Background()
	// Warm up the create and list paths, so the baseline holds their
	// one-time costs.
	create := builtinKinds[0].create
	if err := create(ctx, cs, -1); err != nil {
		b.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	before := sampleMemory(b)
	concurrently(b, n, 16, func(i int) error { return create(ctx, cs, i) })
	after := sampleMemory(b)
	perKB := func(a, z float64) float64 { return (z - a) * 1024 / float64(n) }
	b.ReportMetric(perKB(before.rssMB, after.rssMB), "rss-KB/deployment")
	b.ReportMetric(perKB(before.heapMB, after.heapMB), "heap-KB/deployment")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d Deployments: RSS %.0f → %.0f MiB, heap in use %.0f → %.0f MiB", n, before.rssMB, after.rssMB, before.heapMB, after.heapMB)
}

// BenchmarkServeMemory builds cmd/trellis, starts `trellis serve` on a
// fresh data directory, and reports its RSS (/proc/PID/status VmRSS) and
// Go heap in use (go_memstats_heap_inuse_bytes of /metrics, sampled
// without a forced GC) before and after this process creates benchObjects
// Deployments in it (protobuf, 16 goroutines). It ignores b.N; run it with
// -benchtime 1x. It needs the go tool.
func BenchmarkServeMemory(b *testing.B) {
	n := benchObjects(b)
	gobin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go tool builds the trellis binary: %v", err)
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "trellis")
	if out, err := exec.Command(gobin, "build", "-o", bin, "github.com/trellis-project/trellis/cmd/trellis").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	addr := freeLoopbackAddr(b)
	dataDir := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--listen", addr)
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	pid := strconv.Itoa(cmd.Process.Pid)
	cfg := waitServing(b, filepath.Join(dataDir, "admin.kubeconfig"))
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	create := builtinKinds[0].create
	if err := create(ctx, cs, -1); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let start-up work settle
	sample := func() memSample {
		return memSample{rssMB: procStatusKB(b, pid, "VmRSS") / 1024, heapMB: metricValue(b, cs, "go_memstats_heap_inuse_bytes") / (1 << 20)}
	}
	before := sample()
	start := time.Now()
	concurrently(b, n, 16, func(i int) error { return create(ctx, cs, i) })
	took := time.Since(start)
	time.Sleep(2 * time.Second)
	after := sample()
	perKB := func(a, z float64) float64 { return (z - a) * 1024 / float64(n) }
	b.ReportMetric(before.rssMB, "rss-MB-before")
	b.ReportMetric(after.rssMB, "rss-MB-after")
	b.ReportMetric(before.heapMB, "heap-MB-before")
	b.ReportMetric(after.heapMB, "heap-MB-after")
	b.ReportMetric(perKB(before.rssMB, after.rssMB), "rss-KB/deployment")
	b.ReportMetric(perKB(before.heapMB, after.heapMB), "heap-KB/deployment")
	b.ReportMetric(float64(n)/took.Seconds(), "creates/s")
	// Resident file pages are mostly the executable and the store's
	// memory-mapped file; anonymous ones, the Go heap and stacks.
	b.ReportMetric(procStatusKB(b, pid, "RssAnon")/1024, "rss-anon-MB-after")
	b.ReportMetric(procStatusKB(b, pid, "RssFile")/1024, "rss-file-MB-after")
	b.ReportMetric(0, "ns/op")
}

func freeLoopbackAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitServing waits for the admin kubeconfig a trellis serve process
// writes and for its /readyz, and returns the kubeconfig's client config.
func waitServing(b *testing.B, kubeconfig string) *rest.Config {
	deadline := time.Now().Add(60 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			continue
		}
		cfg.QPS = -1 // no client-side throttling
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var code int
		cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(context.Background()).StatusCode(&code)
		if code == http.StatusOK {
			return cfg
		}
	}
	b.Fatalf("trellis serve not ready after 60 s (kubeconfig %s)", kubeconfig)
	return nil
}

// benchDeployment is a Deployment as a typical Helm chart renders it: an
// application container and a metrics sidecar with ports, env, probes,
// resources and security contexts, volumes and affinity. About 3 KB of
// JSON as sent; 8 KB as served, with defaults and managedFields.
func benchDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{
		"app.kubernetes.io/name":     "shop",
		"app.kubernetes.io/instance": name,
	}
	all := map[string]string{
		"app.kubernetes.io/version":    "2.14.1",
		"app.kubernetes.io/component":  "backend",
		"app.kubernetes.io/part-of":    "shop",
		"app.kubernetes.io/managed-by": "Helm",
		"helm.sh/chart":                "shop-2.14.1",
	}
	for k, v := range labels {
		all[k] = v
	}
	probe := func(path, port string, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString(port)}},
			InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	res := func(cpu, mem string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)},
		}
	}
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true), RunAsNonRoot: ptr.To(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: all, Annotations: map[string]string{
			"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": "default",
		}},
		Spec: appsv1.DeploymentSpec{
			Replicas:             ptr.To[int32](3),
			RevisionHistoryLimit: ptr.To[int32](5),
			Selector:             &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: all, Annotations: map[string]string{
					"checksum/config":      "9f2c4e51d0b7a3c86e1f5d2b4a7c9e0f3b6d8a1c5e7f9b2d4a6c8e0f1a3b5c7d",
					"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
				}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "shop",
					SecurityContext:    &corev1.PodSecurityContext{FSGroup: ptr.To[int64](1000), RunAsUser: ptr.To[int64](1000), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name: "backend", Image: "registry.example.com/shop/backend:2.14.1", ImagePullPolicy: corev1.PullIfNotPresent,
						Args:  []string{"serve", "--config=/etc/shop/config.yaml", "--log-format=json"},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "grpc", ContainerPort: 9000, Protocol: corev1.ProtocolTCP}},
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "shop-db"}, Key: "password"}}},
							{Name: "LOG_LEVEL", Value: "info"},
							{Name: "CACHE_URL", Value: "redis://shop-redis-master.default.svc:6379/0"},
						},
						EnvFrom:        []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "shop-env"}}}},
						Resources:      res("250m", "512Mi"),
						LivenessProbe:  probe("/healthz", "http", 10),
						ReadinessProbe: probe("/ready", "http", 5),
						StartupProbe:   probe("/healthz", "http", 0),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/shop", ReadOnly: true},
							{Name: "tmp", MountPath: "/tmp"},
						},
						SecurityContext: restricted,
					}, {
						Name: "metrics", Image: "registry.example.com/exporters/shop-exporter:0.9.3",
						Args:            []string{"--listen=:9090"},
						Ports:           []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
						Resources:       res("10m", "32Mi"),
						ReadinessProbe:  probe("/metrics", "metrics", 0),
						SecurityContext: restricted,
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "shop-config"}}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
							LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: "kubernetes.io/hostname",
						}}},
					}},
				},
			},
		},
	}
}

// benchConfigMap is a ConfigMap of about 1 KB: labels and a few
// configuration entries.
func benchConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"app.kubernetes.io/name": "shop", "app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "Helm",
		}},
		Data: map[string]string{
			"LOG_LEVEL": "info",
			"CACHE_URL": "redis://shop-redis-master.default.svc:6379/0",
			"config.yaml": "server:\n  port: 8080\n  grpcPort: 9000\n  readTimeout: 30s\n  writeTimeout: 30s\n" +
				"database:\n  host: shop-postgresql.default.svc\n  port: 5432\n  name: shop\n  pool: 20\n" +
				"cache:\n  ttl: 5m\n  size: 10000\n" +
				"features:\n  checkout: true\n  recommendations: true\n  newSearch: false\n" +
				"tracing:\n  endpoint: http://otel-collector.observability.svc:4317\n  sampleRatio: 0.1\n" +
				strings.Repeat("# padding to about one kilobyte of configuration\n", 8),
		},
	}
}
