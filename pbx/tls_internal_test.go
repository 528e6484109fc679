package pbx

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCertificateReload: a renewed pair is served by the next handshake
// after the check interval; a broken one keeps the previous in use.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	if err := WriteTestCertificate(certFile, keyFile, "old.example"); err != nil {
		t.Fatal(err)
	}
	c, err := loadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		cert, err := c.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if n := name(); n != "old.example" {
		t.Fatalf("serving %q", n)
	}
	if err := WriteTestCertificate(certFile, keyFile, "new.example"); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(certFile, later, later)
	_ = os.Chtimes(keyFile, later, later)
	c.checked = time.Time{} // the 10 s check interval has passed
	if n := name(); n != "new.example" {
		t.Fatalf("after renewal serving %q", n)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(keyFile, later.Add(time.Minute), later.Add(time.Minute))
	c.checked = time.Time{}
	if n := name(); n != "new.example" {
		t.Fatalf("after a broken key serving %q", n)
	}
}
