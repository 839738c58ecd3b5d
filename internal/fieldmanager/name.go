package fieldmanager

import (
	"strings"
	"unicode"
	"unicode/utf8"

	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
)

// ManagerName is the manager a write is recorded under: the request's
// fieldManager parameter (already validated) or, when the client sent
// none, what kube-apiserver derives from the User-Agent: the text before
// the first "/", without unprintable characters, cut to the 128 bytes a
// manager name may have.
//
//	ManagerName("", "kubectl/v1.37.2 (linux/amd64) kubernetes/abc") == "kubectl"
func ManagerName(fieldManager, userAgent string) string {
	if fieldManager != "" {
		return fieldManager
	}
	prefix, _, _ := strings.Cut(userAgent, "/")
	var b strings.Builder
	for _, r := range prefix {
		if !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > metav1validation.FieldManagerMaxLength {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
