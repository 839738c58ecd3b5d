// Command crdservable measures, against a running API server, the time
// from a CRD's create to the first successful create of an object of it,
// as a user applying a CRD and then an object sees it: the client runs in
// its own process and sends both as unstructured JSON, as kubectl does.
//
//	go run ./hack/crdservable --kubeconfig .data/admin.kubeconfig \
//	    --crd crd.yaml --object object.yaml --installs 30
//
// Each install renames the CRD's group (g<N>.<group>), so one server takes
// many copies; installs are spaced so that each finds a quiet server. It
// prints the median, mean, minimum and maximum, and the server's CPU time
// per install when --pid names its process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crdservable:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the server")
	crdFile := flag.String("crd", "", "the CRD (YAML or JSON)")
	objFile := flag.String("object", "", "an object of the CRD's storage version (YAML or JSON)")
	installs := flag.Int("installs", 30, "installs to time")
	pause := flag.Duration("pause", 300*time.Millisecond, "wait after each install, for the server's follow-up work")
	pid := flag.Int("pid", 0, "the server's process, to report its CPU time per install")
	flag.Parse()
	if *crdFile == "" || *objFile == "" {
		return errors.New("--crd and --object are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crdTemplate, err := readObject(*crdFile)
	if err != nil {
		return err
	}
	objTemplate, err := readObject(*objFile)
	if err != nil {
		return err
	}
	group, _, _ := unstructured.NestedString(crdTemplate, "spec", "group")
	plural, _, _ := unstructured.NestedString(crdTemplate, "spec", "names", "plural")
	version := strings.TrimPrefix(objTemplate["apiVersion"].(string), group+"/")
	scoped, _, _ := unstructured.NestedString(crdTemplate, "spec", "scope")
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	ctx := context.Background()
	cpuBefore, err := processCPU(*pid)
	if err != nil {
		return err
	}
	run := strconv.FormatInt(time.Now().Unix(), 36)
	var times []time.Duration
	for i := range *installs {
		g := fmt.Sprintf("g%s-%d.%s", run, i, group)
		// Built before the clock starts.
		crd := &unstructured.Unstructured{Object: deepCopy(crdTemplate)}
		crd.SetName(plural + "." + g)
		_ = unstructured.SetNestedField(crd.Object, g, "spec", "group")
		obj := &unstructured.Unstructured{Object: deepCopy(objTemplate)}
		obj.SetAPIVersion(g + "/" + version)
		objects := dyn.Resource(schema.GroupVersionResource{Group: g, Version: version, Resource: plural})
		var r dynamic.ResourceInterface = objects
		if scoped == "Namespaced" {
			obj.SetNamespace("default")
			r = objects.Namespace("default")
		}
		start := time.Now()
		if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating the CRD: %w", err)
		}
		for {
			_, err := r.Create(ctx, obj, metav1.CreateOptions{})
			if err == nil {
				break
			}
			// Not served yet: 404 (or 405 while being registered).
			if !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
				return fmt.Errorf("creating the object: %w", err)
			}
			if time.Since(start) > time.Minute {
				return fmt.Errorf("not servable after a minute: %w", err)
			}
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Since(start))
		time.Sleep(*pause)
	}
	cpuAfter, err := processCPU(*pid)
	if err != nil {
		return err
	}
	var total time.Duration
	for _, d := range times {
		total += d
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	fmt.Printf("%d installs of %s: median %.1f ms, mean %.1f ms, min %.1f ms, max %.1f ms\n", len(times), crdTemplate["metadata"].(map[string]any)["name"],
		ms(sorted[len(sorted)/2]), ms(total/time.Duration(len(times))), ms(sorted[0]), ms(sorted[len(sorted)-1]))
	if *pid != 0 {
		fmt.Printf("server CPU: %.0f ms per install (pauses included)\n", ms(cpuAfter-cpuBefore)/float64(len(times)))
	}
	return nil
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

func deepCopy(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

// processCPU is the user and system CPU time of process pid so far (zero
// without a pid), from /proc.
func processCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from after it.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
