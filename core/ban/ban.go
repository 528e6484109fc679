// Package ban keeps password guessers and scanners out, the way Kamailio's
// pike and ipban modules do: failed authentications are counted per source
// address and per account over a sliding window, and an address past the
// limit is banned (its packets are dropped unanswered) for a while.
//
// An account under attack from many addresses is protected too: past its
// own limit, further credentials for it are refused without being checked,
// except from addresses that authenticated as that account recently, so
// the phones already on the desk keep working while the guessers get
// nowhere. Trusted prefixes (the office's own NAT address, a carrier) are
// never banned.
package ban

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Config tunes a List; zero values take the defaults noted.
type Config struct {
	// Failures from one address within Window that ban it (default 10:
	// the 11th failure bans).
	Failures int
	// Window is the sliding window of the counts (default 60s).
	Window time.Duration
	// BanFor is how long a ban lasts (default 5m).
	BanFor time.Duration
	// AccountFailures within Window lock an account for BanFor against
	// addresses it was not recently seen at (default 20).
	AccountFailures int
	// Trusted addresses are never banned nor locked out.
	Trusted []netip.Prefix
	// OnBan is called (outside the lock) for each new ban of an address
	// (account "") or lock of an account.
	OnBan func(addr netip.Addr, account string, until time.Time)
	// Log gets one line per ban; slog.Default() if nil.
	Log *slog.Logger
	// Now is time.Now; replaced in tests.
	Now func() time.Time
}

// knownFor is how long a successful authentication vouches for an
// address when its account is locked.
const knownFor = time.Hour

// maxTracked bounds each table; a sweep of stale entries makes room.
const maxTracked = 100_000

// List counts failures and holds the bans. Safe for concurrent use.
type List struct {
	cfg Config

	mu       sync.Mutex
	sources  map[netip.Addr]*record
	accounts map[string]*record
	known    map[knownKey]time.Time
}

type knownKey struct {
	account string
	addr    netip.Addr
}

type record struct {
	fails       []time.Time // within the window, oldest first
	bannedUntil time.Time
}

// New returns a List.
func New(cfg Config) *List {
	if cfg.Failures <= 0 {
		cfg.Failures = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.BanFor <= 0 {
		cfg.BanFor = 5 * time.Minute
	}
	if cfg.AccountFailures <= 0 {
		cfg.AccountFailures = 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &List{cfg: cfg, sources: map[netip.Addr]*record{}, accounts: map[string]*record{}, known: map[knownKey]time.Time{}}
}

// Trusted reports whether a is in Config.Trusted (never banned).
func (l *List) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.cfg.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Banned reports whether packets from addr are to be dropped.
func (l *List) Banned(addr netip.Addr) bool {
	addr = addr.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.sources[addr]
	return r != nil && l.cfg.Now().Before(r.bannedUntil)
}

// Locked reports whether credentials for account from addr are to be
// refused unchecked: the account is locked and addr has not authenticated
// as it lately.
func (l *List) Locked(account string, addr netip.Addr) bool {
	addr = addr.Unmap()
	if l.Trusted(addr) {
		return false
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.accounts[account]
	if r == nil || !now.Before(r.bannedUntil) {
		return false
	}
	return !now.Before(l.known[knownKey{account, addr}])
}

// Fail counts one failed authentication of account (may be "") from addr.
func (l *List) Fail(addr netip.Addr, account string) {
	addr = addr.Unmap()
	now := l.cfg.Now()
	var bans []func()
	l.mu.Lock()
	if !l.Trusted(addr) {
		if count(l, l.sources, addr, now, l.cfg.Failures) {
			until := now.Add(l.cfg.BanFor)
			bans = append(bans, func() {
				l.cfg.Log.Warn("address banned after repeated authentication failures",
					"addr", addr, "failures", l.cfg.Failures+1, "window", l.cfg.Window, "until", until)
				if l.cfg.OnBan != nil {
					l.cfg.OnBan(addr, "", until)
				}
			})
		}
	}
	if account != "" && count(l, l.accounts, account, now, l.cfg.AccountFailures) {
		until := now.Add(l.cfg.BanFor)
		bans = append(bans, func() {
			l.cfg.Log.Warn("account locked after repeated authentication failures; known addresses still served",
				"account", account, "failures", l.cfg.AccountFailures+1, "until", until)
			if l.cfg.OnBan != nil {
				l.cfg.OnBan(netip.Addr{}, account, until)
			}
		})
	}
	l.mu.Unlock()
	for _, f := range bans {
		f()
	}
}

// Succeed records that addr authenticated as account.
func (l *List) Succeed(addr netip.Addr, account string) {
	addr = addr.Unmap()
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.known) >= maxTracked {
		for k, t := range l.known {
			if !now.Before(t) {
				delete(l.known, k)
			}
		}
		if len(l.known) >= maxTracked {
			return
		}
	}
	l.known[knownKey{account, addr}] = now.Add(knownFor)
}

// count adds a failure to key's record and reports whether it just went
// over limit (and is now banned). Called with l.mu held.
func count[K comparable](l *List, m map[K]*record, key K, now time.Time, limit int) bool {
	r := m[key]
	if r == nil {
		if len(m) >= maxTracked {
			sweep(m, now, l.cfg.Window)
			if len(m) >= maxTracked {
				return false
			}
		}
		r = &record{}
		m[key] = r
	}
	if now.Before(r.bannedUntil) {
		return false
	}
	cut := now.Add(-l.cfg.Window)
	i := 0
	for i < len(r.fails) && !r.fails[i].After(cut) {
		i++
	}
	r.fails = append(r.fails[i:], now)
	if len(r.fails) <= limit {
		return false
	}
	r.fails = nil
	r.bannedUntil = now.Add(l.cfg.BanFor)
	return true
}

func sweep[K comparable](m map[K]*record, now time.Time, window time.Duration) {
	for k, r := range m {
		if !now.Before(r.bannedUntil) && (len(r.fails) == 0 || now.Sub(r.fails[len(r.fails)-1]) > window) {
			delete(m, k)
		}
	}
}

// Bans is the number of addresses banned now.
func (l *List) Bans() int {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.sources {
		if now.Before(r.bannedUntil) {
			n++
		}
	}
	return n
}
