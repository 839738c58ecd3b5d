package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSplitFlagsKeepsKnownAndDropsUnknownFlags(t *testing.T) {
	cases := []struct {
		name           string
		args           []string
		known, unknown []string
	}{
		{"envtest's flags are all known",
			[]string{"--allow-privileged=true", "--authorization-mode=RBAC", "--bind-address=127.0.0.1",
				"--cert-dir=/tmp/x", "--client-ca-file=/tmp/x/ca.crt", "--disable-admission-plugins=ServiceAccount",
				"--etcd-servers=http://127.0.0.1:1234", "--secure-port=1235", "--service-account-issuer=https://127.0.0.1:1235/",
				"--service-account-key-file=/tmp/x/sa-signer.crt", "--service-account-signing-key-file=/tmp/x/sa-signer.key",
				"--service-cluster-ip-range=10.0.0.0/24"},
			[]string{"--allow-privileged=true", "--authorization-mode=RBAC", "--bind-address=127.0.0.1",
				"--cert-dir=/tmp/x", "--client-ca-file=/tmp/x/ca.crt", "--disable-admission-plugins=ServiceAccount",
				"--etcd-servers=http://127.0.0.1:1234", "--secure-port=1235", "--service-account-issuer=https://127.0.0.1:1235/",
				"--service-account-key-file=/tmp/x/sa-signer.crt", "--service-account-signing-key-file=/tmp/x/sa-signer.key",
				"--service-cluster-ip-range=10.0.0.0/24"},
			nil},
		{"unknown flag with inline value",
			[]string{"--secure-port=1", "--event-ttl=1h"},
			[]string{"--secure-port=1"}, []string{"--event-ttl=1h"}},
		{"unknown flag with separate value",
			[]string{"--event-ttl", "1h", "--secure-port", "1"},
			[]string{"--secure-port", "1"}, []string{"--event-ttl", "1h"}},
		{"unknown boolean flag before a flag",
			[]string{"--enable-aggregator-routing", "--secure-port=1"},
			[]string{"--secure-port=1"}, []string{"--enable-aggregator-routing"}},
		{"known boolean flag without value does not swallow the next",
			[]string{"--allow-privileged", "--secure-port=1"},
			[]string{"--allow-privileged", "--secure-port=1"}, nil},
		{"klog shorthand", []string{"-v=4"}, []string{"-v=4"}, nil},
		{"help", []string{"--help"}, []string{"--help"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			known, unknown := splitFlags(newKubeAPIServerCommand().Flags(), tc.args)
			if !slices.Equal(known, tc.known) || !slices.Equal(unknown, tc.unknown) {
				t.Errorf("splitFlags(%q) = %q, %q; want %q, %q", tc.args, known, unknown, tc.known, tc.unknown)
			}
		})
	}
}

func TestKubeAPIServerConfigUsesEnvtestCertificates(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"apiserver.crt", "apiserver.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd, o := kubeAPIServerCommand()
	if err := cmd.Flags().Parse([]string{"--cert-dir=" + dir, "--secure-port=7000", "--bind-address=127.0.0.1",
		"--authorization-mode=Node,RBAC"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CertFile != dir+"/apiserver.crt" || cfg.KeyFile != dir+"/apiserver.key" {
		t.Errorf("serving pair = %q, %q; want the one in --cert-dir", cfg.CertFile, cfg.KeyFile)
	}
	if cfg.Listen != "127.0.0.1:7000" {
		t.Errorf("Listen = %q", cfg.Listen)
	}
	if !slices.Equal(cfg.AuthorizationModes, []string{"RBAC"}) {
		t.Errorf("AuthorizationModes = %q; want Node dropped", cfg.AuthorizationModes)
	}
}

// --enable-priority-and-fairness is on by default, as kube-apiserver's.
func TestKubeAPIServerPriorityAndFairnessFlag(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		wantDisable bool
	}{
		{nil, false},
		{[]string{"--enable-priority-and-fairness=false"}, true},
		{[]string{"--enable-priority-and-fairness=true"}, false},
	} {
		cmd, o := kubeAPIServerCommand()
		if err := cmd.Flags().Parse(append([]string{"--cert-dir=" + t.TempDir()}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := o.config()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DisablePriorityAndFairness != tc.wantDisable {
			t.Errorf("%q: DisablePriorityAndFairness = %v, want %v", tc.args, cfg.DisablePriorityAndFairness, tc.wantDisable)
		}
	}
}
