package audit

import (
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	upstream "k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Policy decides how each request is audited. It is kube-apiserver's
// rule evaluator over an audit.k8s.io Policy: the first rule matching the
// request's user, groups, verb, resource (group, resource/subresource,
// name), namespace or non-resource URL gives the level; omitStages and
// omitManagedFields are the rule's, else the policy's.
type Policy struct {
	eval upstream.PolicyRuleEvaluator
}

// LoadPolicyFile reads and validates a Policy (audit.k8s.io/v1, YAML or
// JSON), as --audit-policy-file.
func LoadPolicyFile(path string) (*Policy, error) {
	p, err := policy.LoadPolicyFromFile(path)
	if err != nil {
		return nil, err
	}
	return &Policy{eval: policy.NewPolicyRuleEvaluator(p)}, nil
}

// LoadPolicy reads and validates a Policy from its YAML or JSON bytes.
func LoadPolicy(data []byte) (*Policy, error) {
	p, err := policy.LoadPolicyFromBytes(data)
	if err != nil {
		return nil, err
	}
	return &Policy{eval: policy.NewPolicyRuleEvaluator(p)}, nil
}

// Evaluate returns how the request described by attrs is audited.
func (p *Policy) Evaluate(attrs authorizer.Attributes) Config {
	c := p.eval.EvaluatePolicyRule(attrs)
	cfg := Config{Level: auditv1.Level(c.Level), OmitManagedFields: c.OmitManagedFields}
	for _, s := range c.OmitStages {
		cfg.OmitStages = append(cfg.OmitStages, auditv1.Stage(s))
	}
	return cfg
}
