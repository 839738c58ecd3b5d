package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
)

// systemNamespaces exist from the start, as in kube-apiserver.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// bootstrap creates the system namespaces through the full request path
// (in process, with the loopback identity) before the server reports ready.
func (s *Server) bootstrap(chain http.Handler) error {
	existing, err := s.listNames(chain, "/api/v1/namespaces")
	if err != nil {
		return err
	}
	for _, ns := range systemNamespaces {
		if existing["/"+ns] {
			continue // a restart writes nothing
		}
		body, _ := json.Marshal(map[string]any{
			"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": ns},
		})
		code, resp := s.loopbackDo(chain, http.MethodPost, "/api/v1/namespaces", body)
		if code != http.StatusCreated && code != http.StatusConflict {
			return fmt.Errorf("create namespace %s: %d %s", ns, code, resp)
		}
	}
	return s.bootstrapKubernetesService(chain)
}

// bootstrapKubernetesService creates the "kubernetes" Service in the
// default namespace, as kube-apiserver does: the first address of the
// service range, port 443 (https) to the secure port.
func (s *Server) bootstrapKubernetesService(chain http.Handler) error {
	_, cidr, err := net.ParseCIDR(s.cfg.ServiceClusterIPRange)
	if err != nil {
		return fmt.Errorf("service cluster IP range: %w", err)
	}
	ip := slices.Clone(cidr.IP)
	ip[len(ip)-1]++
	_, port, _ := net.SplitHostPort(s.Addr())
	targetPort, _ := strconv.Atoi(port)
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "kubernetes", "namespace": "default",
			"labels": map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		"spec": map[string]any{
			"type": "ClusterIP", "clusterIP": ip.String(), "clusterIPs": []string{ip.String()}, "sessionAffinity": "None",
			"ports": []map[string]any{{"name": "https", "port": 443, "protocol": "TCP", "targetPort": targetPort}},
		},
	})
	code, resp := s.loopbackDo(chain, http.MethodPost, "/api/v1/namespaces/default/services", body)
	if code != http.StatusCreated && code != http.StatusConflict {
		return fmt.Errorf("create service kubernetes: %d %s", code, resp)
	}
	return nil
}

// loopbackDo runs one request through the handler chain in process.
func (s *Server) loopbackDo(chain http.Handler, method, path string, body []byte) (int, []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body)).WithContext(s.stopCtx)
	req.Header.Set("Authorization", "Bearer "+s.loopbackToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent("kube-apiserver"))
	rec := httptest.NewRecorder()
	chain.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
