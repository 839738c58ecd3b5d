package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/trellis-project/trellis/internal/handler"
	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/store"
	"github.com/trellis-project/trellis/internal/store/bolt"
	"github.com/trellis-project/trellis/internal/store/cache"
	"github.com/trellis-project/trellis/internal/store/etcd"
)

// openBackend opens the embedded store, or etcd when servers are given.
func openBackend(ctx context.Context, cfg *Config) (store.Store, error) {
	if len(cfg.EtcdServers) > 0 {
		return etcd.New(ctx, etcd.Config{
			Endpoints: cfg.EtcdServers,
			CAFile:    cfg.EtcdCAFile, CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile,
			DialTimeout: cfg.EtcdDialTimeout,
		})
	}
	return bolt.Open(bolt.Options{
		Dir:                cfg.DataDir,
		CompactionInterval: cfg.CompactionInterval,
		RetainAge:          cfg.CompactionRetainAge,
		RetainRevisions:    cfg.CompactionRetainRevisions,
	})
}

// caches hands out one watch cache per storage prefix, created on first
// use, so that a resource costs nothing until it is touched.
type caches struct {
	backend store.Store
	ctx     context.Context

	mu     sync.Mutex
	byPref map[string]*cache.Cache
}

var _ handler.Storage = (*caches)(nil)

func newCaches(ctx context.Context, backend store.Store) *caches {
	return &caches{backend: backend, ctx: ctx, byPref: map[string]*cache.Cache{}}
}

func (c *caches) For(ctx context.Context, d *resource.Descriptor) (store.Store, error) {
	return c.forPrefix(d.StoragePrefix)
}

func (c *caches) forPrefix(prefix string) (*cache.Cache, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.byPref[prefix]; ok {
		return ch, nil
	}
	ch, err := cache.New(c.ctx, c.backend, prefix, cache.Options{Transform: stampResourceVersion, SharedValues: true})
	if err != nil {
		return nil, fmt.Errorf("watch cache for %s: %w", prefix, err)
	}
	c.byPref[prefix] = ch
	return ch, nil
}

// existing returns the cache of prefix if one is running, without
// starting one.
func (c *caches) existing(prefix string) *cache.Cache {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byPref[prefix]
}

func (c *caches) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.byPref {
		ch.Close()
	}
}

// stampResourceVersion writes the store revision into each cached object
// once, so responses are concatenations of cached bytes.
func stampResourceVersion(kv store.KV) ([]byte, error) {
	out := handler.SetResourceVersion(kv.Value, kv.ModRevision)
	if out == nil {
		return nil, errors.New("stored object has no metadata")
	}
	return out, nil
}

// namespaceLookup answers the handler's namespace lifecycle questions from
// the namespaces watch cache.
type namespaceLookup struct {
	caches *caches
}

func (n namespaceLookup) NamespacePhase(ctx context.Context, name string) (string, bool, bool, error) {
	ch, err := n.caches.forPrefix("/registry/namespaces/")
	if err != nil {
		return "", false, false, err
	}
	kv, err := ch.Get(ctx, "/registry/namespaces/"+name)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, false, nil
	}
	if err != nil {
		return "", false, false, err
	}
	var ns struct {
		Metadata struct {
			DeletionTimestamp *time.Time `json:"deletionTimestamp"`
		} `json:"metadata"`
		Status struct {
			Phase string `json:"phase"`
		} `json:"status"`
	}
	if err := json.Unmarshal(kv.Value, &ns); err != nil {
		return "", false, false, err
	}
	return ns.Status.Phase, ns.Status.Phase == "Terminating" || ns.Metadata.DeletionTimestamp != nil, true, nil
}
