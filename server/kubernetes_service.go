package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
)

// ensureKubernetesService keeps default/kubernetes and its Endpoints and
// EndpointSlice (when there is a non-loopback address) pointing at this
// server, as kube-apiserver's
// kubernetesservice controller and endpoints reconciler do: created if
// missing, endpoints rewritten when the address or port changed. The
// three writes run in parallel; a restart with nothing changed writes
// nothing.
func (s *Server) ensureKubernetesService(chain http.Handler) error {
	// The cluster IP is the first address of the service range, as
	// upstream (10.96.0.1 by default).
	_, cidr, err := net.ParseCIDR(s.cfg.ServiceClusterIPRange)
	if err != nil {
		return fmt.Errorf("service cluster IP range: %w", err)
	}
	clusterIP := slices.Clone(cidr.IP)
	clusterIP[len(clusterIP)-1]++
	ip, port := s.advertiseAddress()
	service := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "kubernetes", "namespace": "default",
			"labels": map[string]any{"provider": "kubernetes", "component": "apiserver"}},
		"spec": map[string]any{
			"type": "ClusterIP", "clusterIP": clusterIP.String(), "sessionAffinity": "None", "ipFamilyPolicy": "SingleStack",
			"ports": []any{map[string]any{"name": "https", "protocol": "TCP", "port": 443, "targetPort": port}},
		},
	}
	endpoints := map[string]any{
		"apiVersion": "v1", "kind": "Endpoints",
		"metadata": map[string]any{"name": "kubernetes", "namespace": "default",
			"labels": map[string]any{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		"subsets": []any{map[string]any{
			"addresses": []any{map[string]any{"ip": ip}},
			"ports":     []any{map[string]any{"name": "https", "port": port, "protocol": "TCP"}},
		}},
	}
	slice := map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata": map[string]any{"name": "kubernetes", "namespace": "default",
			"labels": map[string]any{"kubernetes.io/service-name": "kubernetes"}},
		"addressType": "IPv4",
		"endpoints":   []any{map[string]any{"addresses": []any{ip}, "conditions": map[string]any{"ready": true}}},
		"ports":       []any{map[string]any{"name": "https", "port": port, "protocol": "TCP"}},
	}
	type write struct {
		collection string
		obj        map[string]any
		replace    bool // rewrite when it differs (endpoints follow the server)
	}
	writes := []write{{"/api/v1/namespaces/default/services", service, false}}
	if ip != "" { // Endpoints may not name loopback addresses
		writes = append(writes,
			write{"/api/v1/namespaces/default/endpoints", endpoints, true},
			write{"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", slice, true})
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.ensureObject(chain, w.collection, w.obj, w.replace)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ensureObject creates obj in collection, or, if replace, rewrites the
// existing object when its address or ports differ.
func (s *Server) ensureObject(chain http.Handler, collection string, obj map[string]any, replace bool) error {
	name := obj["metadata"].(map[string]any)["name"].(string)
	code, body := s.loopbackDo(chain, http.MethodGet, collection+"/"+name, nil)
	switch {
	case code == http.StatusNotFound:
		code, body = s.loopbackDo(chain, http.MethodPost, collection, mustJSON(obj))
		if code != http.StatusCreated && code != http.StatusConflict {
			return fmt.Errorf("create %s/%s: %d %s", collection, name, code, body)
		}
		return nil
	case code != http.StatusOK:
		return fmt.Errorf("get %s/%s: %d %s", collection, name, code, body)
	case !replace:
		return nil
	}
	var current map[string]any
	if err := json.Unmarshal(body, &current); err != nil {
		return err
	}
	same := true
	for _, field := range []string{"subsets", "endpoints", "ports"} {
		if want, ok := obj[field]; ok && !bytes.Equal(mustJSON(normalize(want)), mustJSON(current[field])) {
			same = false
		}
	}
	if same {
		return nil
	}
	obj["metadata"].(map[string]any)["resourceVersion"] = current["metadata"].(map[string]any)["resourceVersion"]
	code, body = s.loopbackDo(chain, http.MethodPut, collection+"/"+name, mustJSON(obj))
	if code != http.StatusOK {
		return fmt.Errorf("update %s/%s: %d %s", collection, name, code, body)
	}
	return nil
}

// normalize round-trips v through JSON so it compares with decoded JSON.
func normalize(v any) any {
	var out any
	json.Unmarshal(mustJSON(v), &out)
	return out
}

// advertiseAddress is the address other clients reach this server at,
// as kube-apiserver's --advertise-address defaults: the listen address,
// or, when that is loopback or unspecified, the first global unicast
// IPv4 address of the machine.
func (s *Server) advertiseAddress() (string, int) {
	addr := s.listener.Addr().(*net.TCPAddr)
	if ip := addr.IP; ip.To4() != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		return ip.String(), addr.Port
	}
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		return "", addr.Port
	}
	for _, a := range ifaces {
		if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.To4() != nil && ipnet.IP.IsGlobalUnicast() {
			return ipnet.IP.String(), addr.Port
		}
	}
	return "", addr.Port
}
