package handler

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/trellis-project/trellis/internal/resource"
)

// Kept objects are found only at their revision and for their
// descriptor, small ones are not kept, and the cache stays bounded.
func TestWrittenCache(t *testing.T) {
	var c writtenCache
	d := &resource.Descriptor{KeepWritten: true}
	other := &resource.Descriptor{KeepWritten: true}
	obj := &corev1.ConfigMap{}
	c.put(d, "/a", 5, obj, writtenMinBytes)
	if got, ok := c.get(d, "/a", 5); !ok || got != obj {
		t.Fatal("a kept object is not found")
	}
	for _, miss := range []struct {
		d   *resource.Descriptor
		key string
		rev int64
	}{{d, "/a", 6}, {d, "/b", 5}, {other, "/a", 5}} {
		if _, ok := c.get(miss.d, miss.key, miss.rev); ok {
			t.Errorf("found %s at %d for another descriptor or revision", miss.key, miss.rev)
		}
	}
	c.put(d, "/small", 1, obj, writtenMinBytes-1)
	if _, ok := c.get(d, "/small", 1); ok {
		t.Error("a small object was kept")
	}
	c.put(&resource.Descriptor{}, "/off", 1, obj, writtenMinBytes)
	if _, ok := c.get(&resource.Descriptor{}, "/off", 1); ok {
		t.Error("an object of a descriptor without KeepWritten was kept")
	}
	for i := range 3 * writtenMaxEntries {
		c.put(d, fmt.Sprint("/k", i), 1, obj, writtenMinBytes)
	}
	if len(c.entries) != writtenMaxEntries || len(c.order) != writtenMaxEntries || c.bytes != writtenMaxEntries*writtenMinBytes {
		t.Fatalf("%d entries, %d in order, %d bytes; want %d entries", len(c.entries), len(c.order), c.bytes, writtenMaxEntries)
	}
	if _, ok := c.get(d, "/k0", 1); ok {
		t.Error("the oldest entry was not evicted")
	}
	if _, ok := c.get(d, fmt.Sprint("/k", 3*writtenMaxEntries-1), 1); !ok {
		t.Error("the newest entry was evicted")
	}
	c.put(d, "/huge", 1, obj, writtenMaxBytes/2+1)
	c.put(d, "/huge2", 1, obj, writtenMaxBytes/2+1)
	if c.bytes > writtenMaxBytes {
		t.Fatalf("%d bytes kept, over the %d limit", c.bytes, writtenMaxBytes)
	}
}
