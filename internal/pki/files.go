package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// readCerts returns every CERTIFICATE block in the PEM file at path, in file
// order. A file without one is an error naming it.
func readCerts(path string) ([]*x509.Certificate, error) {
	blocks, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("pki: %s: no PEM CERTIFICATE block found", path)
	}
	return certs, nil
}

// readPrivateKey returns the first private key in the PEM file at path, in
// any of the encodings openssl and kubeadm produce (PKCS#8, PKCS#1, SEC 1).
func readPrivateKey(path string) (crypto.Signer, error) {
	blocks, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		var key any
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", path, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("pki: %s: unsupported private key type %T", path, key)
		}
		return signer, nil
	}
	return nil, fmt.Errorf("pki: %s: no PEM PRIVATE KEY block found", path)
}

// readPublicKeys returns every public key in the PEM file at path. Like
// kube-apiserver's --service-account-key-file, the file may hold several
// keys, so that tokens signed by a retired key still verify during rotation.
func readPublicKeys(path string) ([]crypto.PublicKey, error) {
	blocks, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for _, b := range blocks {
		var key crypto.PublicKey
		switch b.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", path, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("pki: %s: no PEM PUBLIC KEY block found", path)
	}
	return keys, nil
}

// readPEM decodes all PEM blocks in the file at path. Non-PEM text between
// blocks is ignored, as openssl does; a file with no block at all is an
// error naming it. A missing file yields an error wrapping fs.ErrNotExist.
func readPEM(path string) ([]*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err) // *PathError already names the file
	}
	var blocks []*pem.Block
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("pki: %s: not PEM encoded", path)
	}
	return blocks, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodePrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodePublicKey(key crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// writeFileAtomic replaces path with data: it writes a temp file in the same
// directory (so rename stays on one filesystem), sets perm, syncs, and
// renames over path. Readers see the old file or the new one, never a torn
// one, and a private key is never readable by others even transiently.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // created 0600
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
			err = fmt.Errorf("pki: writing %s: %w", path, err)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
