package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/kubernetes/pkg/capabilities"

	"github.com/trellis-project/trellis/server"
)

// KubeAPIServerName is the executable name under which trellis behaves as
// kube-apiserver (a symlink or a copy named so), for tools such as
// controller-runtime's envtest that start "kube-apiserver" themselves.
const KubeAPIServerName = "kube-apiserver"

// kubeAPIServerOptions holds kube-apiserver's flags that map onto
// server.Config, plus those accepted for compatibility only.
type kubeAPIServerOptions struct {
	cfg          server.Config
	bindAddress  string
	securePort   int
	certDir      string
	etcdPrefix   string
	noEffect     map[string]*string // accepted flags without an effect, by name
	noEffectBool map[string]*bool
	// enableAPF is --enable-priority-and-fairness.
	enableAPF bool
}

// noEffectFlags are kube-apiserver flags that envtest or common test set-ups
// pass and that Trellis accepts without acting on them; ENVTEST.md says why
// each one makes no difference.
var noEffectFlags = []struct{ name, usage string }{
	{"service-node-port-range", "accepted; Trellis does not allocate node ports"},
	{"advertise-address", "accepted; Trellis publishes no kubernetes Service endpoints"},
	{"disable-admission-plugins", "accepted; Trellis runs only the webhook and initializer admission plugins"},
	{"enable-admission-plugins", "accepted; Trellis runs only the webhook and initializer admission plugins"},
	{"admission-control", "accepted (deprecated upstream); see --enable-admission-plugins"},
	{"feature-gates", "accepted; Trellis serves v1.37's default feature set"},
	{"runtime-config", "accepted; Trellis serves v1.37's default API versions"},
	{"storage-backend", "accepted; etcd3 is the only etcd backend"},
	{"storage-media-type", "accepted; objects are stored as JSON"},
	{"audit-log-path", "accepted; Trellis writes no audit log"},
	{"audit-policy-file", "accepted; Trellis writes no audit log"},
	{"kubelet-client-certificate", "accepted; Trellis does not proxy to kubelets"},
	{"kubelet-client-key", "accepted; Trellis does not proxy to kubelets"},
	{"logging-format", "accepted; logs are plain text"},
	{"insecure-bind-address", "accepted (removed upstream); no insecure port is served"},
}

var noEffectBoolFlags = []struct{ name, usage string }{
	{"anonymous-auth", "accepted; anonymous requests reach only /healthz, /livez, /readyz and /version"},
	{"profiling", "accepted; no pprof endpoints"},
}

func newKubeAPIServerCommand() *cobra.Command {
	cmd, _ := kubeAPIServerCommand()
	return cmd
}

func kubeAPIServerCommand() (*cobra.Command, *kubeAPIServerOptions) {
	o := &kubeAPIServerOptions{noEffect: map[string]*string{}, noEffectBool: map[string]*bool{}}
	var verbosity int
	var allowPrivileged bool
	cmd := &cobra.Command{
		Use:   KubeAPIServerName,
		Short: "Trellis, started under kube-apiserver's name and flags",
		Long: `Trellis behaves as kube-apiserver v1.37 for tools that start one by name,
such as controller-runtime's envtest. It accepts kube-apiserver's flags:
those below that change Trellis's behaviour are honoured, the rest are accepted
and logged. Data goes to the etcd named by --etcd-servers, as kube-apiserver's
would; without it, to an embedded store under --cert-dir.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for name, v := range o.noEffect {
				if cmd.Flags().Changed(name) {
					fmt.Fprintf(os.Stderr, "trellis: --%s=%s accepted, no effect\n", name, *v)
				}
			}
			for name, v := range o.noEffectBool {
				if cmd.Flags().Changed(name) {
					fmt.Fprintf(os.Stderr, "trellis: --%s=%t accepted, no effect\n", name, *v)
				}
			}
			cfg, err := o.config()
			if err != nil {
				return err
			}
			// Pod validation reads this process-wide setting, as in kube-apiserver.
			capabilities.Setup(allowPrivileged, 0)
			return runServe(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.SortFlags = true
	f.StringVar(&o.bindAddress, "bind-address", "0.0.0.0", "address to serve HTTPS on")
	f.IntVar(&o.securePort, "secure-port", 6443, "port to serve HTTPS on")
	f.StringVar(&o.certDir, "cert-dir", "/var/run/kubernetes", "directory of the serving certificate (apiserver.crt/apiserver.key, generated when absent) and Trellis's own state")
	f.StringVar(&o.cfg.CertFile, "tls-cert-file", "", "serving certificate (default: apiserver.crt in --cert-dir)")
	f.StringVar(&o.cfg.KeyFile, "tls-private-key-file", "", "serving certificate key (default: apiserver.key in --cert-dir)")
	f.StringVar(&o.cfg.ClientCAFile, "client-ca-file", "", "CA bundle that verifies client certificates")
	f.StringVar(&o.cfg.TokenAuthFile, "token-auth-file", "", "static bearer tokens, CSV: token,user,uid,\"group1,group2\"")
	f.StringSliceVar(&o.cfg.AuthorizationModes, "authorization-mode", []string{"AlwaysAllow"}, "ordered authorizers: RBAC, AlwaysAllow, AlwaysDeny; Node is accepted and skipped (there are no kubelets)")
	f.StringSliceVar(&o.cfg.EtcdServers, "etcd-servers", nil, "etcd client URLs to store into (default: an embedded store under --cert-dir)")
	f.StringVar(&o.etcdPrefix, "etcd-prefix", "/registry", "etcd key prefix; only /registry is supported")
	f.StringVar(&o.cfg.EtcdCAFile, "etcd-cafile", "", "CA that verifies the etcd servers")
	f.StringVar(&o.cfg.EtcdCertFile, "etcd-certfile", "", "client certificate for etcd")
	f.StringVar(&o.cfg.EtcdKeyFile, "etcd-keyfile", "", "client key for etcd")
	f.StringArrayVar(&o.cfg.ServiceAccountKeyFiles, "service-account-key-file", nil, "PEM file of keys that verify ServiceAccount tokens; repeatable")
	f.StringVar(&o.cfg.ServiceAccountSigningKeyFile, "service-account-signing-key-file", "", "PEM private key that signs ServiceAccount tokens")
	f.StringArrayVar(&o.cfg.ServiceAccountIssuers, "service-account-issuer", nil, "issuer of ServiceAccount tokens; repeatable: the first signs, all are accepted")
	f.StringSliceVar(&o.cfg.APIAudiences, "api-audiences", nil, "audiences ServiceAccount tokens must have one of (default: the issuers)")
	f.DurationVar(&o.cfg.ServiceAccountMaxTokenExpiration, "service-account-max-token-expiration", 0, "longest validity of a requested ServiceAccount token")
	f.StringVar(&o.cfg.ServiceAccountJWKSURI, "service-account-jwks-uri", "", "jwks_uri in the issuer discovery document")
	f.BoolVar(&allowPrivileged, "allow-privileged", false, "allow privileged containers in Pods")
	f.IntVar(&o.cfg.MaxRequestsInFlight, "max-requests-inflight", 400, "concurrent read-only requests before 429")
	f.IntVar(&o.cfg.MaxMutatingRequestsInFlight, "max-mutating-requests-inflight", 200, "concurrent mutating requests before 429")
	f.BoolVar(&o.enableAPF, "enable-priority-and-fairness", true, "classify requests by FlowSchemas and limit them per priority level (API Priority and Fairness); false: the max-in-flight limits alone")
	f.DurationVar(&o.cfg.MinRequestTimeout, "min-request-timeout", 30*time.Minute, "shortest server-chosen watch duration")
	f.DurationVar(&o.cfg.RequestTimeout, "request-timeout", time.Minute, "deadline of every request but watches")
	f.StringVar(&o.cfg.ServiceClusterIPRange, "service-cluster-ip-range", "10.0.0.0/24", "CIDR whose first address the kubernetes Service gets (other Services get addresses of Trellis's own choosing)")
	f.StringSliceVar(&o.cfg.DisabledControllers, "trellis-disabled-controllers", []string{"serviceaccount", "serviceaccount-token", "root-ca-cert-publisher", "validatingadmissionpolicy-status"},
		"Trellis's in-process controllers not to run; kube-apiserver runs none, but namespace deletion and ClusterRole aggregation are kept (see docs/ENVTEST.md)")
	f.IntVarP(&verbosity, "v", "v", 0, "log verbosity (accepted; Trellis logs little)")
	for _, nf := range noEffectFlags {
		o.noEffect[nf.name] = f.String(nf.name, "", nf.usage)
	}
	for _, nf := range noEffectBoolFlags {
		o.noEffectBool[nf.name] = f.Bool(nf.name, true, nf.usage)
	}
	return cmd, o
}

// config turns the flags into a server configuration.
func (o *kubeAPIServerOptions) config() (server.Config, error) {
	cfg := o.cfg
	if o.etcdPrefix != "/registry" && o.etcdPrefix != "/registry/" {
		return cfg, fmt.Errorf("--etcd-prefix=%s: only /registry is supported", o.etcdPrefix)
	}
	cfg.Listen = net.JoinHostPort(o.bindAddress, strconv.Itoa(o.securePort))
	cfg.DisablePriorityAndFairness = !o.enableAPF
	cfg.DataDir = o.certDir
	if cfg.CertFile == "" && cfg.KeyFile == "" {
		// As kube-apiserver: a serving pair in --cert-dir is used; envtest
		// writes one there, signed by the CA its clients trust.
		crt, key := filepath.Join(o.certDir, "apiserver.crt"), filepath.Join(o.certDir, "apiserver.key")
		if exists(crt) && exists(key) {
			cfg.CertFile, cfg.KeyFile = crt, key
		}
	}
	modes := cfg.AuthorizationModes[:0:0]
	for _, m := range cfg.AuthorizationModes {
		if m == "Node" {
			fmt.Fprintln(os.Stderr, "trellis: --authorization-mode=Node skipped: there are no kubelets to authorize")
			continue
		}
		modes = append(modes, m)
	}
	cfg.AuthorizationModes = modes
	return cfg, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// splitFlags separates the arguments fs knows from the rest, so that a
// kube-apiserver flag Trellis has never heard of is logged instead of
// failing the start. An unknown "--name value" pair is dropped whole:
// kube-apiserver takes no positional arguments.
func splitFlags(fs *pflag.FlagSet, args []string) (known, unknown []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			known = append(known, args[i:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		if name == "help" || name == "h" {
			known = append(known, a)
			continue
		}
		var fl *pflag.Flag
		if strings.HasPrefix(a, "--") {
			fl = fs.Lookup(name)
		} else if len(name) == 1 {
			fl = fs.ShorthandLookup(name)
		}
		if fl != nil {
			known = append(known, a)
			if !hasValue && fl.NoOptDefVal == "" && i+1 < len(args) {
				i++
				known = append(known, args[i])
			}
			continue
		}
		unknown = append(unknown, a)
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			unknown = append(unknown, args[i])
		}
	}
	return known, unknown
}

// runKubeAPIServer runs trellis as kube-apiserver with args (without the
// program name).
func runKubeAPIServer(args []string, stderr io.Writer) error {
	cmd := newKubeAPIServerCommand()
	known, unknown := splitFlags(cmd.Flags(), args)
	if len(unknown) > 0 {
		fmt.Fprintf(stderr, "trellis: ignoring kube-apiserver flags Trellis does not know: %s\n", strings.Join(unknown, " "))
	}
	cmd.SetArgs(known)
	return cmd.Execute()
}
