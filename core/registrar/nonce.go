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

	mu   sync.Mutex
	seen map[nonceKey]ncState
	// peak is the most nonces tracked since seen was made: past a burst,
	// purge gives the map's room back (a Go map never shrinks).
	peak int
	// tracking is called (under mu: it must not block) when the first
	// nonce count of an empty table is recorded: the registrar's Run then
	// purges while any are tracked. Run had gone to sleep on an empty table
	// and a later burst's counts stayed until the table was full.
	tracking func()
}

// nonceKey is a nonce's text held in the map itself: no string a nonce,
// nothing left scattered on the heap once its entry goes.
type nonceKey [nonceLen]byte

type ncState struct {
	last    uint32    // highest nc accepted; math.MaxUint32 once a qop-less answer used it
	expires time.Time // when the nonce goes stale and the entry can be dropped
}

func newNonces(secret []byte, ttl time.Duration, max int) *nonces {
	n := &nonces{secret: secret, ttl: ttl, max: max, seen: make(map[nonceKey]ncState)}
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

// check verifies that nonce was issued by us for realm and is not stale.
func (n *nonces) check(now time.Time, nonce, realm string) (nonceState, time.Time) {
	if len(nonce) != nonceLen {
		return nonceInvalid, time.Time{}
	}
	var raw [nonceRawLen]byte
	// Strict: one spelling per nonce (no stray padding bits), so a nonce's
	// use count cannot be restarted under another spelling.
	if k, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(nonce)); err != nil || k != nonceRawLen {
		return nonceInvalid, time.Time{}
	}
	var want [16]byte
	n.mac(want[:], raw[:16], realm)
	if !hmac.Equal(want[:], raw[16:]) {
		return nonceInvalid, time.Time{}
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	expires := issued.Add(n.ttl)
	if !now.Before(expires) {
		return nonceStale, expires
	}
	return nonceOK, expires
}

type ncVerdict int

const (
	ncOK ncVerdict = iota
	ncReplay
	ncFull
)

// use records one use of a valid, unexpired nonce. With qop the nonce count
// must rise on every use; without qop (RFC 2069 clients) a nonce is single-use.
func (n *nonces) use(now time.Time, nonce string, expires time.Time, nc uint32, qop bool) ncVerdict {
	next := uint32(math.MaxUint32)
	if qop {
		next = nc
	}
	if len(nonce) != nonceLen {
		return ncReplay // never: check took only nonces of that length
	}
	var key nonceKey
	copy(key[:], nonce)
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.seen[key]
	if ok {
		if !qop || nc <= st.last {
			return ncReplay
		}
		st.last = next
		n.seen[key] = st
		return ncOK
	}
	if len(n.seen) >= n.max {
		n.purgeLocked(now)
		if len(n.seen) >= n.max {
			return ncFull
		}
	}
	n.seen[key] = ncState{last: next, expires: expires}
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
	for k, st := range n.seen {
		if !now.Before(st.expires) {
			delete(n.seen, k)
		}
	}
	if n.peak > nonceMapSmall && len(n.seen) < n.peak/4 {
		fresh := make(map[nonceKey]ncState, len(n.seen))
		for k, st := range n.seen {
			fresh[k] = st
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
