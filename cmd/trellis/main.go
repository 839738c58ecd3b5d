// Command trellis is the Trellis control plane.
//
// Installed under the name kube-apiserver (a symlink or a copy), it behaves
// as kube-apiserver for tools that start one, such as envtest; see
// docs/ENVTEST.md.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	var err error
	if filepath.Base(os.Args[0]) == KubeAPIServerName {
		err = runKubeAPIServer(os.Args[1:], os.Stderr)
	} else {
		err = newRootCommand().Execute()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
