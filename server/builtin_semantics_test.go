package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// wantInvalid checks that err is kube-apiserver's 422 Invalid with a
// cause of type reason on field whose message contains msg.
func wantInvalid(t *testing.T, err error, reason metav1.CauseType, field, msg string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("got %v, want 422 Invalid on %s", err, field)
	}
	causes := err.(apierrors.APIStatus).Status().Details.Causes
	for _, c := range causes {
		if c.Type == reason && c.Field == field && strings.Contains(c.Message, msg) {
			return
		}
	}
	t.Fatalf("no %s cause on %s containing %q in %+v", reason, field, msg, causes)
}

func webTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
	}
}

func webDeployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: webTemplate(map[string]string{"app": name}),
		},
	}
}

// TestDeploymentDefaultsAndValidation pins kube-apiserver's answers for
// a minimal Deployment: apps/v1 and pod template defaults, generation 1,
// no status; and the 422 for a selector that misses the template.
func TestDeploymentDefaultsAndValidation(t *testing.T) {
	ctx := context.Background()
	deps := newClient(t).AppsV1().Deployments("default")

	d, err := deps.Create(ctx, webDeployment("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quarter := intstr.FromString("25%")
	wantSpec := appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](1),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Strategy: appsv1.DeploymentStrategy{
			Type:          appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &quarter, MaxSurge: &quarter},
		},
		RevisionHistoryLimit:    ptr.To[int32](10),
		ProgressDeadlineSeconds: ptr.To[int32](600),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "web", Image: "nginx:1.27",
					TerminationMessagePath:   "/dev/termination-log",
					TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					ImagePullPolicy:          corev1.PullIfNotPresent,
				}},
				RestartPolicy:                 corev1.RestartPolicyAlways,
				TerminationGracePeriodSeconds: ptr.To[int64](30),
				DNSPolicy:                     corev1.DNSClusterFirst,
				SecurityContext:               &corev1.PodSecurityContext{},
				SchedulerName:                 corev1.DefaultSchedulerName,
			},
		},
	}
	if !apiequality.Semantic.DeepEqual(d.Spec, wantSpec) {
		got, _ := json.Marshal(d.Spec)
		want, _ := json.Marshal(wantSpec)
		t.Errorf("defaulted spec:\n got %s\nwant %s", got, want)
	}
	if d.Generation != 1 || !apiequality.Semantic.DeepEqual(d.Status, appsv1.DeploymentStatus{}) {
		t.Errorf("generation %d, status %+v; want 1 and empty", d.Generation, d.Status)
	}

	bad := webDeployment("bad")
	bad.Spec.Template.Labels = map[string]string{"app": "other"}
	_, err = deps.Create(ctx, bad, metav1.CreateOptions{})
	want := "Deployment.apps \"bad\" is invalid: spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`"
	if err == nil || err.Error() != want {
		t.Fatalf("mismatched selector:\n got %v\nwant %s", err, want)
	}
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.template.metadata.labels", "`selector` does not match template `labels`")

	// The selector is immutable in apps/v1.
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "x"}}
	d.Spec.Template.Labels["tier"] = "x"
	_, err = deps.Update(ctx, d, metav1.UpdateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.selector", "field is immutable")
}

// TestDeploymentGenerationAndStatus checks upstream's rules for writes:
// spec and annotation changes bump generation, label changes do not;
// the main resource keeps the stored status and /status keeps the spec.
func TestDeploymentGenerationAndStatus(t *testing.T) {
	ctx := context.Background()
	deps := newClient(t).AppsV1().Deployments("default")
	d, err := deps.Create(ctx, webDeployment("gen"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	d.Spec.Replicas = ptr.To[int32](2)
	d.Status.Replicas = 7 // ignored on the main resource
	if d, err = deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if d.Generation != 2 || d.Status.Replicas != 0 {
		t.Fatalf("after spec change: generation %d, status.replicas %d; want 2, 0", d.Generation, d.Status.Replicas)
	}
	d.Labels = map[string]string{"team": "blue"}
	if d, err = deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil || d.Generation != 2 {
		t.Fatalf("label change: generation %d, %v; want 2", d.Generation, err)
	}
	d.Annotations = map[string]string{"note": "copied to replica sets"}
	if d, err = deps.Update(ctx, d, metav1.UpdateOptions{}); err != nil || d.Generation != 3 {
		t.Fatalf("annotation change: generation %d, %v; want 3", d.Generation, err)
	}

	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, ReadyReplicas: 1}
	d.Spec.Replicas = ptr.To[int32](9) // ignored on /status
	st, err := deps.UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.ReadyReplicas != 1 || *st.Spec.Replicas != 2 || st.Generation != 3 {
		t.Fatalf("status write: status %+v, replicas %d, generation %d", st.Status, *st.Spec.Replicas, st.Generation)
	}
	st.Status.ReadyReplicas = 5 // more ready than replicas
	_, err = deps.UpdateStatus(ctx, st, metav1.UpdateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "status.readyReplicas", "cannot be greater than status.replicas")
}

// TestScaleSubresources reads and writes /scale of every kind that has
// one, as autoscaling/v1 Scale with the selector in string form.
func TestScaleSubresources(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	const ns = "default"
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "s"}}
	tmpl := webTemplate(map[string]string{"app": "s"})
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": "s"}, Template: &tmpl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	type scaler interface {
		GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
		UpdateScale(ctx context.Context, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
	}
	for _, tc := range []struct {
		resource string
		client   scaler
		replicas func() (int32, int64)
	}{
		{"deployments", c.AppsV1().Deployments(ns), func() (int32, int64) {
			d, _ := c.AppsV1().Deployments(ns).Get(ctx, "s", metav1.GetOptions{})
			return *d.Spec.Replicas, d.Generation
		}},
		{"replicasets", c.AppsV1().ReplicaSets(ns), func() (int32, int64) {
			r, _ := c.AppsV1().ReplicaSets(ns).Get(ctx, "s", metav1.GetOptions{})
			return *r.Spec.Replicas, r.Generation
		}},
		{"statefulsets", c.AppsV1().StatefulSets(ns), func() (int32, int64) {
			s, _ := c.AppsV1().StatefulSets(ns).Get(ctx, "s", metav1.GetOptions{})
			return *s.Spec.Replicas, s.Generation
		}},
		{"replicationcontrollers", c.CoreV1().ReplicationControllers(ns), func() (int32, int64) {
			r, _ := c.CoreV1().ReplicationControllers(ns).Get(ctx, "s", metav1.GetOptions{})
			return *r.Spec.Replicas, r.Generation
		}},
	} {
		t.Run(tc.resource, func(t *testing.T) {
			sc, err := tc.client.GetScale(ctx, "s", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sc.Spec.Replicas != 1 || sc.Status.Selector != "app=s" || sc.Name != "s" || sc.UID == "" || sc.ResourceVersion == "" {
				t.Fatalf("scale = %+v", sc)
			}
			sc.Spec.Replicas = 4
			out, err := tc.client.UpdateScale(ctx, "s", sc, metav1.UpdateOptions{})
			if err != nil || out.Spec.Replicas != 4 {
				t.Fatalf("update scale: %+v, %v", out, err)
			}
			if replicas, gen := tc.replicas(); replicas != 4 || gen != 2 {
				t.Fatalf("after scale: replicas %d generation %d; want 4, 2", replicas, gen)
			}
			sc = out
			sc.Spec.Replicas = -1
			if _, err := tc.client.UpdateScale(ctx, "s", sc, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
				t.Fatalf("negative replicas: %v, want 422", err)
			}
		})
	}
}

// TestJobSelectorAndValidation checks upstream's Job rules: a generated
// selector and labels from the job's uid, the manualSelector escape
// hatch, and restart policy validation.
func TestJobSelectorAndValidation(t *testing.T) {
	ctx := context.Background()
	jobs := newClient(t).BatchV1().Jobs("default")
	tmpl := webTemplate(nil)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever

	j, err := jobs.Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "once"}, Spec: batchv1.JobSpec{Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := string(j.UID)
	if got := j.Spec.Selector.MatchLabels; len(got) != 1 || got["batch.kubernetes.io/controller-uid"] != uid {
		t.Errorf("generated selector %v", got)
	}
	for k, v := range map[string]string{
		"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "once",
		"controller-uid": uid, "job-name": "once",
	} {
		if j.Spec.Template.Labels[k] != v {
			t.Errorf("template label %s = %q, want %q", k, j.Spec.Template.Labels[k], v)
		}
	}
	if *j.Spec.Completions != 1 || *j.Spec.Parallelism != 1 || *j.Spec.BackoffLimit != 6 || *j.Spec.CompletionMode != batchv1.NonIndexedCompletion ||
		*j.Spec.Suspend || *j.Spec.ManualSelector || *j.Spec.PodReplacementPolicy != batchv1.TerminatingOrFailed {
		t.Errorf("job defaults: %+v", j.Spec)
	}

	// manualSelector: the client's selector is kept and must match.
	manual := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Spec: batchv1.JobSpec{
		ManualSelector: ptr.To(true), Template: tmpl,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"run": "manual"}},
	}}
	manual.Spec.Template.Labels = map[string]string{"run": "other"}
	_, err = jobs.Create(ctx, manual, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.template.metadata.labels", "`selector` does not match template `labels`")
	manual.Spec.Template.Labels = map[string]string{"run": "manual"}
	got, err := jobs.Create(ctx, manual, metav1.CreateOptions{})
	if err != nil || got.Spec.Selector.MatchLabels["run"] != "manual" || got.Spec.Template.Labels["controller-uid"] != "" {
		t.Fatalf("manual selector: %+v, %v", got, err)
	}

	always := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "always"}, Spec: batchv1.JobSpec{Template: webTemplate(nil)}}
	_, err = jobs.Create(ctx, always, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueRequired, "spec.template.spec.restartPolicy", `valid values: "OnFailure", "Never"`)
}

// TestCronJobDefaultsAndSchedule checks CronJob defaults and schedule
// validation.
func TestCronJobDefaultsAndSchedule(t *testing.T) {
	ctx := context.Background()
	cjs := newClient(t).BatchV1().CronJobs("default")
	tmpl := webTemplate(nil)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly"}, Spec: batchv1.CronJobSpec{
		Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}},
	}}
	got, err := cjs.Create(ctx, cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ConcurrencyPolicy != batchv1.AllowConcurrent || *got.Spec.Suspend || *got.Spec.SuccessfulJobsHistoryLimit != 3 || *got.Spec.FailedJobsHistoryLimit != 1 {
		t.Errorf("cronjob defaults: %+v", got.Spec)
	}

	for _, tc := range []struct{ schedule, msg string }{
		{"not a schedule", "expected exactly 5 fields, found 3"},
		{"61 * * * *", "end of range (61) above maximum (59)"},
		{"TZ=UTC 0 3 * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"},
	} {
		bad := cj.DeepCopy()
		bad.Name, bad.Spec.Schedule = "bad", tc.schedule
		_, err := cjs.Create(ctx, bad, metav1.CreateOptions{})
		wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.schedule", tc.msg)
	}
	bad := cj.DeepCopy()
	bad.Name, bad.Spec.TimeZone = "bad", ptr.To("Mars/Olympus")
	_, err = cjs.Create(ctx, bad, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.timeZone", "unknown time zone Mars/Olympus")
}

// TestIngressValidation checks Ingress path rules.
func TestIngressValidation(t *testing.T) {
	ctx := context.Background()
	ings := newClient(t).NetworkingV1().Ingresses("default")
	if _, err := ings.Create(ctx, testIngress("web", "/app"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := ings.Create(ctx, testIngress("relative", "app"), metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.rules[0].http.paths[0].path", "must be an absolute path")

	noType := testIngress("notype", "/")
	noType.Spec.Rules[0].HTTP.Paths[0].PathType = nil
	_, err = ings.Create(ctx, noType, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueRequired, "spec.rules[0].http.paths[0].pathType", "pathType must be specified")

	noBackend := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "empty"}}
	_, err = ings.Create(ctx, noBackend, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec", "either `defaultBackend` or `rules` must be specified")
}

// TestPodDisruptionBudgetValidation checks PDB rules.
func TestPodDisruptionBudgetValidation(t *testing.T) {
	ctx := context.Background()
	pdbs := newClient(t).PolicyV1().PodDisruptionBudgets("default")
	both := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "both"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(1)),
	}}
	_, err := pdbs.Create(ctx, both, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec", "minAvailable and maxUnavailable cannot be both set")

	pct := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "pct"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MaxUnavailable: ptr.To(intstr.FromString("150%")),
	}}
	_, err = pdbs.Create(ctx, pct, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.maxUnavailable", "must not be greater than 100%")

	ok := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "ok"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: ptr.To(intstr.FromString("50%")), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
	}}
	got, err := pdbs.Create(ctx, ok, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 1 || got.Status.ObservedGeneration != 0 {
		t.Errorf("pdb generation %d, status %+v", got.Generation, got.Status)
	}
}

// TestHorizontalPodAutoscalerVersions checks autoscaling/v2 defaults and
// validation, and that v1 serves the same object.
func TestHorizontalPodAutoscalerVersions(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	v2 := c.AutoscalingV2().HorizontalPodAutoscalers("default")
	target := autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}
	hpa, err := v2.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: target, MaxReplicas: 5,
			// A behavior with one field set gets the rest of upstream's rules.
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}},
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *hpa.Spec.MinReplicas != 1 || len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
		*hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("v2 defaults: %+v", hpa.Spec)
	}
	b := hpa.Spec.Behavior
	if b == nil || b.ScaleUp == nil || *b.ScaleUp.StabilizationWindowSeconds != 0 || len(b.ScaleUp.Policies) != 2 ||
		*b.ScaleDown.StabilizationWindowSeconds != 60 || *b.ScaleDown.SelectPolicy != autoscalingv2.MaxChangePolicySelect ||
		len(b.ScaleDown.Policies) != 1 || b.ScaleDown.Policies[0].Value != 100 {
		t.Errorf("v2 behavior defaults: %+v", b)
	}

	v1, err := c.AutoscalingV1().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Spec.MaxReplicas != 5 || *v1.Spec.TargetCPUUtilizationPercentage != 80 || v1.UID != hpa.UID {
		t.Errorf("v1 view: %+v", v1.Spec)
	}

	bad := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: target, MinReplicas: ptr.To[int32](3), MaxReplicas: 2}}
	_, err = v2.Create(ctx, bad, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.maxReplicas", "must be greater than or equal to `minReplicas`")
}

// TestStatefulSetAndDaemonSetRules checks StatefulSet and DaemonSet
// defaults and their update and template rules.
func TestStatefulSetAndDaemonSetRules(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
	sts, err := c.AppsV1().StatefulSets("default").Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Selector: sel, Template: webTemplate(map[string]string{"app": "db"})}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := sts.Spec
	if *s.Replicas != 1 || s.PodManagementPolicy != appsv1.OrderedReadyPodManagement || s.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType ||
		*s.UpdateStrategy.RollingUpdate.Partition != 0 || *s.RevisionHistoryLimit != 10 ||
		s.PersistentVolumeClaimRetentionPolicy.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("statefulset defaults: %+v", s)
	}
	sts.Spec.ServiceName = "renamed"
	_, err = c.AppsV1().StatefulSets("default").Update(ctx, sts, metav1.UpdateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.serviceName", "field is immutable")

	ds, err := c.AppsV1().DaemonSets("default").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: webTemplate(map[string]string{"app": "db"})}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate.MaxUnavailable.IntValue() != 1 ||
		u.RollingUpdate.MaxSurge.IntValue() != 0 || *ds.Spec.RevisionHistoryLimit != 10 || ds.Generation != 1 {
		t.Errorf("daemonset defaults: %+v generation %d", ds.Spec, ds.Generation)
	}
	never := webTemplate(map[string]string{"app": "db"})
	never.Spec.RestartPolicy = corev1.RestartPolicyNever
	_, err = c.AppsV1().DaemonSets("default").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "never"},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: never}}, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueNotSupported, "spec.template.spec.restartPolicy", `supported values: "Always"`)
}

// TestPodRulesAndFieldSelectors checks what kube-apiserver sets on a new
// pod, that /status writes keep the spec, and pod field selectors.
func TestPodRulesAndFieldSelectors(t *testing.T) {
	ctx := context.Background()
	pods := newClient(t).CoreV1().Pods("default")
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}
	p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1"}, Spec: spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending || p.Status.QOSClass != corev1.PodQOSBestEffort || p.Generation != 1 ||
		p.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways || p.Spec.EnableServiceLinks == nil {
		t.Errorf("new pod: status %+v, generation %d, spec %+v", p.Status, p.Generation, p.Spec)
	}
	spec.NodeName = "node-1"
	if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p2"}, Spec: spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP, p.Status.PodIPs = "10.1.0.7", []corev1.PodIP{{IP: "10.1.0.7"}}
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](5) // ignored on /status
	if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodRunning || p.Spec.ActiveDeadlineSeconds != nil {
		t.Fatalf("status write: phase %s, activeDeadlineSeconds %v", p.Status.Phase, p.Spec.ActiveDeadlineSeconds)
	}

	for selector, want := range map[string]string{
		"spec.nodeName=node-1":                                  "p2",
		"status.phase=Running":                                  "p1",
		"status.podIP=10.1.0.7":                                 "p1",
		"spec.nodeName=,status.phase=Running":                   "p1",
		"spec.schedulerName=default-scheduler,metadata.name=p2": "p2",
	} {
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil || len(list.Items) != 1 || list.Items[0].Name != want {
			t.Errorf("field selector %s: %v, %v; want %s", selector, list, err, want)
		}
	}
	if _, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.containers=x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unsupported field label: %v, want 400", err)
	}
}

// TestReplicationControllerValidationIsNotDoubled checks that a rule
// checked both by hand-written and by declarative validation is reported
// once, as kube-apiserver reports it.
func TestReplicationControllerValidationIsNotDoubled(t *testing.T) {
	tmpl := webTemplate(map[string]string{"app": "rc"})
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc"}, Spec: corev1.ReplicationControllerSpec{
		Replicas: ptr.To[int32](-1), Selector: map[string]string{"app": "rc"}, Template: &tmpl,
	}}
	_, err := newClient(t).CoreV1().ReplicationControllers("default").Create(context.Background(), rc, metav1.CreateOptions{})
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "spec.replicas", "must be greater than or equal to 0")
	if causes := err.(apierrors.APIStatus).Status().Details.Causes; len(causes) != 1 {
		t.Errorf("causes %+v, want one", causes)
	}
}

// TestPodSubresources writes pods/ephemeralcontainers (kubectl debug) and
// pods/resize: each changes only its part of the spec.
func TestPodSubresources(t *testing.T) {
	ctx := context.Background()
	pods := newClient(t).CoreV1().Pods("default")
	cpu := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: cpu, Limits: cpu},
	}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox", TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent,
	}}}
	p.Spec.Containers[0].Image = "busybox:changed" // not an ephemeral container: ignored
	p, err = pods.UpdateEphemeralContainers(ctx, "app", p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.EphemeralContainers) != 1 || p.Spec.Containers[0].Image != "busybox" {
		t.Fatalf("ephemeral containers %+v, image %s", p.Spec.EphemeralContainers, p.Spec.Containers[0].Image)
	}

	more := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: more, Limits: more}
	p, err = pods.UpdateResize(ctx, "app", p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]; got.String() != "200m" {
		t.Fatalf("after resize: cpu limit %s", got.String())
	}
	best := corev1.ResourceRequirements{}
	p.Spec.Containers[0].Resources = best
	_, err = pods.UpdateResize(ctx, "app", p, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("resize that changes the QoS class: %v, want 422", err)
	}
}

// TestCertificateSigningRequestApproval checks that a CSR records its
// requester, that /approval sets conditions with their timestamps, and
// that /status takes the issued certificate.
func TestCertificateSigningRequestApproval(t *testing.T) {
	ctx := context.Background()
	csrs := newClient(t).CertificatesV1().CertificateSigningRequests()
	caPEM, csrPEM := testCertificates(t)
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: csrPEM, SignerName: "example.com/signer", Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
			Username: "mallory", // the server records the real requester
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if csr.Spec.Username == "" || csr.Spec.Username == "mallory" {
		t.Errorf("spec.username = %q, want the requester", csr.Spec.Username)
	}

	csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "Test", Message: "approved by test",
	}}
	csr, err = csrs.UpdateApproval(ctx, "alice", csr, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(csr.Status.Conditions) != 1 || csr.Status.Conditions[0].LastUpdateTime.IsZero() || csr.Status.Conditions[0].LastTransitionTime.IsZero() {
		t.Fatalf("approved conditions %+v", csr.Status.Conditions)
	}

	csr.Status.Certificate = caPEM
	if csr, err = csrs.UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil || len(csr.Status.Certificate) == 0 {
		t.Fatalf("issue certificate: %v", err)
	}

	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "Test",
	})
	_, err = csrs.UpdateApproval(ctx, "alice", csr, metav1.UpdateOptions{})
	// kube-apiserver v1.37 enforces this rule through declarative
	// validation (beta), whose message replaces the hand-written "Approved
	// and Denied conditions are mutually exclusive".
	wantInvalid(t, err, metav1.CauseTypeFieldValueInvalid, "status.conditions",
		"must specify at most one of: `conditions[{\"type\": \"Approved\"}]`, `conditions[{\"type\": \"Denied\"}]`")
}
