package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// keyPair is a certificate with its private key, kept in memory and written
// to <dir>/<name>.crt and <dir>/<name>.key.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
	// CertFile and KeyFile are set once the pair has been written to disk.
	CertFile string
	KeyFile  string
}

// pki is everything the test cluster needs: two CAs (serving, client), the
// apiserver serving cert, client certs for the admin and each component, and
// the service-account signing key.
type pki struct {
	dir       string
	servingCA *keyPair
	clientCA  *keyPair
	serving   *keyPair
	clients   map[string]*keyPair
	// SAKeyFile holds the RSA private key used to sign (apiserver) and verify
	// (apiserver, kube-controller-manager) service-account tokens.
	SAKeyFile string
	SAPubFile string
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n
}

// ECDSA P-256 keys: cheap to generate, which matters for startup time.
func newKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func encode(cert *x509.Certificate, key crypto.Signer) (*keyPair, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}, nil
}

func newCA(cn string) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"meshoperator-e2e"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return encode(cert, key)
}

func (ca *keyPair) sign(tmpl *x509.Certificate) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = newSerial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(5 * 365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return encode(cert, key)
}

func (kp *keyPair) write(dir, name string) error {
	kp.CertFile = filepath.Join(dir, name+".crt")
	kp.KeyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(kp.CertFile, kp.certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(kp.KeyFile, kp.keyPEM, 0o600)
}

// clientIdentity is the (user, groups) a component authenticates as.
type clientIdentity struct {
	name   string // file/kubeconfig name
	user   string // certificate CN
	groups []string
}

func generatePKI(dir string, clients []clientIdentity) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{dir: dir, clients: map[string]*keyPair{}}
	var err error
	if p.servingCA, err = newCA("localcluster-serving-ca"); err != nil {
		return nil, err
	}
	if err = p.servingCA.write(dir, "serving-ca"); err != nil {
		return nil, err
	}
	if p.clientCA, err = newCA("localcluster-client-ca"); err != nil {
		return nil, err
	}
	if err = p.clientCA.write(dir, "client-ca"); err != nil {
		return nil, err
	}

	p.serving, err = p.servingCA.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{
			"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local",
		},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.96.0.1")},
	})
	if err != nil {
		return nil, err
	}
	if err = p.serving.write(dir, "apiserver"); err != nil {
		return nil, err
	}

	for _, c := range clients {
		kp, err := p.clientCA.sign(&x509.Certificate{
			Subject:     pkix.Name{CommonName: c.user, Organization: c.groups},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return nil, err
		}
		if err = kp.write(dir, "client-"+c.name); err != nil {
			return nil, err
		}
		p.clients[c.name] = kp
	}

	// Service-account tokens: RSA (RS256 is what every consumer expects).
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	p.SAKeyFile = filepath.Join(dir, "sa.key")
	p.SAPubFile = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(p.SAKeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.SAPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// kubeconfig renders a self-contained kubeconfig (all data embedded) for the
// named client identity.
func (p *pki) kubeconfig(server, client string) ([]byte, error) {
	kp, ok := p.clients[client]
	if !ok {
		return nil, fmt.Errorf("no client identity %q", client)
	}
	b64 := func(b []byte) string { return base64Std(b) }
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: localcluster
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: localcluster
  context:
    cluster: localcluster
    user: %s
    namespace: default
current-context: localcluster
preferences: {}
`, server, b64(p.servingCA.certPEM), client, b64(kp.certPEM), b64(kp.keyPEM), client)), nil
}
