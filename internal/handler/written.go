package handler

import (
	"sync"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/trellis-project/trellis/internal/resource"
)

// writtenCache keeps the last objects written to descriptors with
// KeepWritten, decoded, by storage key and revision, so that the update
// that usually follows a CRD's create or change (the CRD controller's
// status write) need not decode the stored CRD again. Only objects large
// enough for their decoding to matter are kept, and only a few: an entry
// is used only while the store still holds its revision.
type writtenCache struct {
	mu      sync.Mutex
	entries map[string]writtenEntry
	order   []string // keys, oldest first
	bytes   int
}

type writtenEntry struct {
	d    *resource.Descriptor
	rev  int64
	obj  runtime.Object
	size int
}

const (
	writtenMinBytes   = 32 << 10
	writtenMaxEntries = 4
	writtenMaxBytes   = 8 << 20
)

// put keeps obj, stored under key at rev as size bytes. The caller must
// not modify obj afterwards.
func (c *writtenCache) put(d *resource.Descriptor, key string, rev int64, obj runtime.Object, size int) {
	if !d.KeepWritten || size < writtenMinBytes || size > writtenMaxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]writtenEntry{}
	}
	c.drop(key)
	c.entries[key] = writtenEntry{d: d, rev: rev, obj: obj, size: size}
	c.order = append(c.order, key)
	c.bytes += size
	for len(c.order) > writtenMaxEntries || c.bytes > writtenMaxBytes {
		c.drop(c.order[0])
	}
}

// get returns the object kept for key at rev, if any; it is shared and
// must only be read.
func (c *writtenCache) get(d *resource.Descriptor, key string, rev int64) (runtime.Object, bool) {
	if !d.KeepWritten {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.rev != rev || e.d != d {
		return nil, false
	}
	return e.obj, true
}

// drop forgets key; c.mu is held.
func (c *writtenCache) drop(key string) {
	e, ok := c.entries[key]
	if !ok {
		return
	}
	delete(c.entries, key)
	c.bytes -= e.size
	for i, k := range c.order {
		if k == key {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}
