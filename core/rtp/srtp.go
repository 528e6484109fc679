package rtp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/pion/srtp/v3"
)

// SDES (RFC 4568): each side names, in its SDP, the key it encrypts its
// own packets with. Suites are the two every SRTP phone has.
var suites = map[string]srtp.ProtectionProfile{
	"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80,
	"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32,
}

// DefaultSuite is the suite callpark offers.
const DefaultSuite = "AES_CM_128_HMAC_SHA1_80"

// SupportedSuite reports whether callpark can use suite.
func SupportedSuite(suite string) bool { _, ok := suites[suite]; return ok }

// NewKey makes a fresh master key and salt for suite, base64 as SDP
// carries it.
func NewKey(suite string) (string, error) {
	p, ok := suites[suite]
	if !ok {
		return "", fmt.Errorf("rtp: unsupported SRTP suite %q", suite)
	}
	kl, _ := p.KeyLen()
	sl, _ := p.SaltLen()
	b := make([]byte, kl+sl)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Context makes the SRTP context of a base64 key and salt of suite.
func NewContext(suite, key string) (*srtp.Context, error) {
	p, ok := suites[suite]
	if !ok {
		return nil, fmt.Errorf("rtp: unsupported SRTP suite %q", suite)
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		// Some phones leave the padding out.
		b, err = base64.RawStdEncoding.DecodeString(key)
	}
	if err != nil {
		return nil, errors.New("rtp: SRTP key is not base64")
	}
	kl, _ := p.KeyLen()
	sl, _ := p.SaltLen()
	if len(b) != kl+sl {
		return nil, fmt.Errorf("rtp: SRTP key of %d bytes, want %d", len(b), kl+sl)
	}
	return srtp.CreateContext(b[:kl], b[kl:], p)
}
