package handler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellis-project/trellis/internal/resource"
	"github.com/trellis-project/trellis/internal/resource/builtin"
)

// An object that fits only without its managed fields is stored without
// them; one that does not fit at all is still refused.
func TestEncodeWrittenDropsManagedFieldsOfTooLargeObjects(t *testing.T) {
	var d *resource.Descriptor
	for _, bd := range builtin.Descriptors() {
		if bd.Group == "" && bd.Resource == "configmaps" {
			d = bd
		}
	}
	rc := &reqCtx{d: d}
	entry := metav1.ManagedFieldsEntry{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{".":{},"f:big":{}}}`)}}
	managed := make([]metav1.ManagedFieldsEntry, 100)
	for i := range managed {
		managed[i] = entry
	}
	for _, tc := range []struct {
		size    int
		fits    bool
		managed bool
	}{
		{size: 1000, fits: true, managed: true},
		{size: maxObjectBytes - 1000, fits: true, managed: false},
		{size: maxObjectBytes + 1, fits: false},
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "default", ManagedFields: managed},
			Data: map[string]string{"big": strings.Repeat("x", tc.size)}}
		raw, err := rc.encodeWritten(cm)
		if (err == nil) != tc.fits {
			t.Errorf("%d bytes: error %v", tc.size, err)
			continue
		}
		if kept := len(cm.ManagedFields) > 0 && strings.Contains(string(raw), `"managedFields"`); tc.fits && kept != tc.managed {
			t.Errorf("%d bytes: managed fields kept %v, want %v", tc.size, kept, tc.managed)
		}
	}
}
