package server

import (
	"log"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"

	"github.com/trellis-project/trellis/internal/apiextensions"
	"github.com/trellis-project/trellis/internal/controller/namespace"
)

// startControllers runs the in-process controllers against the server's
// own API through the loopback identity, like any other client.
func (s *Server) startControllers() {
	cfg := s.LoopbackConfig()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	extClient, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		log.Printf("controllers: %v", err)
		return
	}
	crdc := apiextensions.NewController(extClient, dyn, s.registry)
	s.controllers.Add(1)
	go func() {
		defer s.controllers.Done()
		crdc.Run(s.stopCtx)
	}()
	s.crdsServed = crdc.Initialized()

	nsc := namespace.New(client, dyn, s.namespacedResources)
	s.controllers.Add(1)
	go func() {
		defer s.controllers.Done()
		nsc.Run(s.stopCtx)
	}()
}

// namespacedResources lists each stored namespaced resource once (one
// version per storage prefix).
func (s *Server) namespacedResources() []schema.GroupVersionResource {
	seen := map[string]bool{}
	var out []schema.GroupVersionResource
	for _, d := range s.registry.All() {
		if !d.Namespaced || seen[d.StoragePrefix] {
			continue
		}
		seen[d.StoragePrefix] = true
		out = append(out, schema.GroupVersionResource{Group: d.Group, Version: d.Version, Resource: d.Resource})
	}
	return out
}
