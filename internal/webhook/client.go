// Package webhook builds the clients kube-apiserver uses to call out to
// webhooks — CRD conversion, admission, and later authentication,
// authorization and aggregated servers — from a clientConfig: a URL or a
// Service reference, and a caBundle.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// ServiceResolver finds an address that reaches a Service's port:
// "host:port" to dial. A webhook's clientConfig.service is resolved
// through it each time a new connection is opened.
type ServiceResolver interface {
	ResolveService(ctx context.Context, namespace, name string, port int32) (string, error)
}

var _ ServiceResolver = EndpointsResolver{}

// ClientConfig is the part shared by every webhook API's clientConfig.
type ClientConfig struct {
	URL      *string
	Service  *ServiceReference
	CABundle []byte
}

// ServiceReference names the Service a webhook is served behind.
type ServiceReference struct {
	Namespace, Name string
	Path            *string
	Port            *int32
}

// RESTConfig builds a webhook's client configuration the way
// kube-apiserver does: no rate limit, the caBundle as the only trusted
// roots, HTTP/1.1 except to loopback URLs, and for a service reference
// the host <name>.<namespace>.svc so the webhook's certificate verifies,
// dialled at an address the resolver finds. timeout 0 leaves deadlines to
// the request context.
func RESTConfig(cc ClientConfig, resolver ServiceResolver, timeout time.Duration, codecs runtime.NegotiatedSerializer) (*rest.Config, error) {
	cfg := &rest.Config{
		UserAgent: "kube-apiserver-admission",
		Timeout:   timeout,
		QPS:       -1,
		ContentConfig: rest.ContentConfig{
			ContentType:          runtime.ContentTypeJSON,
			NegotiatedSerializer: codecs,
		},
	}
	if len(bytes.TrimSpace(cc.CABundle)) > 0 {
		cfg.TLSClientConfig.CAData = cc.CABundle
	}
	if svc := cc.Service; svc != nil {
		port := int32(443)
		if svc.Port != nil {
			port = *svc.Port
		}
		serverName := svc.Name + "." + svc.Namespace + ".svc"
		host := net.JoinHostPort(serverName, strconv.Itoa(int(port)))
		cfg.Host = "https://" + host
		if svc.Path != nil {
			cfg.APIPath = *svc.Path
		}
		cfg.TLSClientConfig.ServerName = serverName
		cfg.NextProtos = []string{"http/1.1"}
		var d net.Dialer
		namespace, name := svc.Namespace, svc.Name
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == host {
				if resolver == nil {
					return nil, fmt.Errorf("no resolver for service %s/%s", namespace, name)
				}
				resolved, err := resolver.ResolveService(ctx, namespace, name, port)
				if err != nil {
					return nil, err
				}
				addr = resolved
			}
			return d.DialContext(ctx, network, addr)
		}
		return cfg, nil
	}
	if cc.URL == nil || *cc.URL == "" {
		return nil, errors.New("webhook configuration must have either service or URL")
	}
	u, err := url.Parse(*cc.URL)
	if err != nil {
		return nil, fmt.Errorf("Unparsable URL: %v", err)
	}
	cfg.Host = u.Scheme + "://" + u.Host
	cfg.APIPath = u.Path
	if !isLoopback(u.Hostname()) {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return cfg, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
