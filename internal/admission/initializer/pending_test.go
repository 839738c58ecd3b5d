package initializer

import "testing"

func TestPendingReadsTheAnnotationOfStoredBytes(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      bool
	}{
		{"no annotations", `{"metadata":{"name":"a"},"data":{"k":"v"}}`, false},
		{"pending", `{"metadata":{"name":"a","annotations":{"initializers.trellis.dev/pending":"quota,labels"}}}`, true},
		{"empty list", `{"metadata":{"name":"a","annotations":{"initializers.trellis.dev/pending":""}}}`, false},
		{"key in data, not an annotation", `{"metadata":{"name":"a"},"data":{"initializers.trellis.dev/pending":"x"}}`, false},
		{"longer key ending alike", `{"metadata":{"annotations":{"xinitializers.trellis.dev/pending":"x"}}}`, false},
		{"invalid JSON", `{"metadata":{"annotations":{"initializers.trellis.dev/pending":"x"`, false},
	} {
		if got := Pending([]byte(tc.raw)); got != tc.want {
			t.Errorf("%s: Pending = %v, want %v", tc.name, got, tc.want)
		}
	}
}
