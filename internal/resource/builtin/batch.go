package builtin

import (
	batchv1 "k8s.io/api/batch/v1"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	"k8s.io/kubernetes/pkg/registry/batch/cronjob"
	"k8s.io/kubernetes/pkg/registry/batch/job"
)

// batchKinds are stored and served; no controller runs jobs or schedules
// cron jobs yet.
func batchKinds() []kindDef {
	return inGroup(batchv1.SchemeGroupVersion,
		kindDef{kind: "Job", resource: "jobs", categories: all, namespaced: true,
			rules: job.Strategy, subs: status(job.StatusStrategy), fields: attrs(job.GetAttrs)},
		kindDef{kind: "CronJob", resource: "cronjobs", short: []string{"cj"}, categories: all, namespaced: true,
			rules: cronjob.Strategy, subs: status(cronjob.StatusStrategy)},
	)
}
