package pki

import (
	"crypto"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeconfigName names the cluster, user and context WriteKubeconfig writes.
const KubeconfigName = "trellis"

// WriteKubeconfig writes an admin kubeconfig for server (e.g.
// "https://127.0.0.1:6443") to path, mode 0600. Everything is embedded
// (certificate-authority-data, client-certificate-data, client-key-data), so
// the file keeps working if the PKI directory moves. The write is atomic:
// a kubectl reading the file concurrently sees the old or the new config.
//
// The CA data is the generated CA, or for a user-provided serving
// certificate the self-signed top of its chain; when neither applies it is
// omitted and clients fall back to the system roots.
func WriteKubeconfig(path, server string, b *Bundle) error {
	certPEM, keyPEM, err := b.AdminPEM()
	if err != nil {
		return fmt.Errorf("pki: kubeconfig %s: %w", path, err)
	}

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[KubeconfigName] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthorityData: b.serverCAPEM(),
	}
	cfg.AuthInfos[KubeconfigName] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	cfg.Contexts[KubeconfigName] = &clientcmdapi.Context{
		Cluster:  KubeconfigName,
		AuthInfo: KubeconfigName,
	}
	cfg.CurrentContext = KubeconfigName

	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("pki: kubeconfig %s: %w", path, err)
	}
	return writeFileAtomic(path, data, 0o600)
}

// AdminPEM returns the admin client certificate chain and key as PEM.
func (b *Bundle) AdminPEM() (certPEM, keyPEM []byte, err error) {
	for _, der := range b.Admin.Certificate {
		certPEM = append(certPEM, encodeCert(der)...)
	}
	key, ok := b.Admin.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("bundle has no admin private key")
	}
	keyPEM, err = encodePrivateKey(key)
	return certPEM, keyPEM, err
}

// ServerCAPEM is the CA clients should trust for the serving certificate
// (nil means the system roots).
func (b *Bundle) ServerCAPEM() []byte { return b.serverCAPEM() }

// LoopbackCAPEM is the CA that verifies the Loopback certificate, for
// clients that set LoopbackServerName as their TLS server name.
func (b *Bundle) LoopbackCAPEM() []byte { return encodeCert(b.CA.Raw) }
