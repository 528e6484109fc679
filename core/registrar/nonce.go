package registrar

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"math"
	"sync"
	"time"
)

// A nonce is base64url(issued(8) | random(8) | mac(16)) where mac is the first
// 16 bytes of HMAC-SHA256(secret, issued | random | realm). Verifying one
// needs no state; only the nc counters of nonces in use are remembered.
const (
	nonceRawLen = 8 + 8 + 16
	nonceLen    = (nonceRawLen*8 + 5) / 6 // base64 without padding
)

type nonceState int

const (
	nonceOK      nonceState = iota
	nonceInvalid            // not minted by us for this realm
	nonceStale              // ours, but older than NonceTTL
)

// nonces mints and checks nonces and tracks the highest nc seen per nonce.
// Its lock is a leaf: no other lock is taken while holding it.
type nonces struct {
	secret []byte
	ttl    time.Duration
	max    int
	macs   sync.Pool // hash.Hash (HMAC with secret)

	mu sync.Mutex
	// seen holds the highest nonce count accepted for each nonce in use
	// (math.MaxUint32 once a qop-less answer used it), until it goes stale.
	seen map[nonceID]uint32
	// peak is the most nonces tracked since seen was made: past a burst,
	// purge gives the map's room back (a Go map never shrinks).
	peak int
	// tracking is called (under mu: it must not block) when the first
	// nonce count of an empty table is recorded: the registrar's Run then
	// purges while any are tracked. Run had gone to sleep on an empty table
	// and a later burst's counts stayed until the table was full.
	tracking func()
}

// nonceID is what tells a nonce whose MAC checked from any other: when
// it was issued and its random part; its expiry follows from the first.
// With its count, 42 bytes of map an entry, where the nonce's text and
// its expiry took 176 (TestNonceCountsTakeLittleRoom). A phone that
// answers each challenge once (sipp; a phone that does not reuse nonces)
// has a nonce tracked for NonceTTL for each call: at 1,500 park+retrieve
// cycles/s (two challenged INVITEs each) 65,536 entries, 11 MiB then,
// filled in 22 s and the calls after them failed.
type nonceID [16]byte

// issued is when the nonce was minted, in Unix nanoseconds.
func (id nonceID) issued() int64 { return int64(binary.BigEndian.Uint64(id[:8])) }

// stale reports whether the nonce is past the ttl at now.
func (n *nonces) stale(id nonceID, now time.Time) bool {
	return now.UnixNano()-id.issued() >= int64(n.ttl)
}

func newNonces(secret []byte, ttl time.Duration, max int) *nonces {
	n := &nonces{secret: secret, ttl: ttl, max: max, seen: make(map[nonceID]uint32)}
	n.macs.New = func() any { return hmac.New(sha256.New, n.secret) }
	return n
}

func (n *nonces) mac(dst []byte, body []byte, realm string) {
	h := n.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(body)
	h.Write([]byte(realm))
	var sum [sha256.Size]byte
	copy(dst, h.Sum(sum[:0]))
	n.macs.Put(h)
}

// issue returns a fresh nonce for realm.
func (n *nonces) issue(now time.Time, realm string) string {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixNano()))
	_, _ = rand.Read(raw[8:16]) // crypto/rand.Read never fails (Go 1.24+)
	n.mac(raw[16:], raw[:16], realm)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// check verifies that nonce was issued by us for realm and is not stale,
// and returns its identity.
func (n *nonces) check(now time.Time, nonce, realm string) (nonceState, nonceID) {
	var id nonceID
	if len(nonce) != nonceLen {
		return nonceInvalid, id
	}
	var raw [nonceRawLen]byte
	// Strict: one spelling per nonce (no stray padding bits), so a nonce's
	// use count cannot be restarted under another spelling.
	if k, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(nonce)); err != nil || k != nonceRawLen {
		return nonceInvalid, id
	}
	var want [16]byte
	n.mac(want[:], raw[:16], realm)
	if !hmac.Equal(want[:], raw[16:]) {
		return nonceInvalid, id
	}
	copy(id[:], raw[:16])
	if n.stale(id, now) {
		return nonceStale, id
	}
	return nonceOK, id
}

type ncVerdict int

const (
	ncOK ncVerdict = iota
	ncReplay
	ncFull
)

// use records one use of the valid, unexpired nonce id (from check). With
// qop the nonce count must rise on every use; without qop (RFC 2069
// clients) a nonce is single-use.
func (n *nonces) use(now time.Time, id nonceID, nc uint32, qop bool) ncVerdict {
	next := uint32(math.MaxUint32)
	if qop {
		next = nc
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	last, ok := n.seen[id]
	if ok {
		if !qop || nc <= last {
			return ncReplay
		}
		n.seen[id] = next
		return ncOK
	}
	if len(n.seen) >= n.max {
		n.purgeLocked(now)
		if len(n.seen) >= n.max {
			return ncFull
		}
	}
	n.seen[id] = next
	n.peak = max(n.peak, len(n.seen))
	if len(n.seen) == 1 && n.tracking != nil {
		n.tracking()
	}
	return ncOK
}

// purge drops the counters of stale nonces and reports how many remain.
func (n *nonces) purge(now time.Time) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.purgeLocked(now)
	return len(n.seen)
}

func (n *nonces) purgeLocked(now time.Time) {
	for id := range n.seen {
		if n.stale(id, now) {
			delete(n.seen, id)
		}
	}
	if n.peak > nonceMapSmall && len(n.seen) < n.peak/4 {
		fresh := make(map[nonceID]uint32, len(n.seen))
		for id, last := range n.seen {
			fresh[id] = last
		}
		n.seen, n.peak = fresh, len(fresh)
	}
}

// peakSize is peak, under the lock.
func (n *nonces) peakSize() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peak
}

// nonceMapSmall is the size under which the map is never remade.
const nonceMapSmall = 1024
