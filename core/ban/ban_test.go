package ban

import (
	"net/netip"
	"testing"
	"time"
)

func TestAddressBannedPastTheLimitThenFreed(t *testing.T) {
	now := time.Unix(1000, 0)
	var banned []netip.Addr
	l := New(Config{Failures: 3, Window: time.Minute, BanFor: 5 * time.Minute, Now: func() time.Time { return now },
		OnBan: func(a netip.Addr, acct string, _ time.Time) {
			if acct == "" {
				banned = append(banned, a)
			}
		}})
	bad, good := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")
	for range 3 {
		l.Fail(bad, "")
	}
	if l.Banned(bad) {
		t.Fatal("banned at the limit, want past it")
	}
	l.Fail(bad, "")
	if !l.Banned(bad) || len(banned) != 1 {
		t.Fatalf("not banned after 4 failures (bans %v)", banned)
	}
	if l.Banned(good) {
		t.Fatal("a bystander was banned")
	}
	now = now.Add(5 * time.Minute)
	if l.Banned(bad) {
		t.Fatal("ban did not lapse")
	}
}

func TestFailuresOutsideTheWindowDoNotAddUp(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Config{Failures: 2, Window: time.Minute, Now: func() time.Time { return now }})
	a := netip.MustParseAddr("192.0.2.7")
	for range 10 {
		l.Fail(a, "")
		now = now.Add(31 * time.Second)
	}
	if l.Banned(a) {
		t.Fatal("slow failures were banned")
	}
}

func TestTrustedNeverBanned(t *testing.T) {
	l := New(Config{Failures: 1, Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	a := netip.MustParseAddr("10.1.2.3")
	for range 50 {
		l.Fail(a, "200")
	}
	if l.Banned(a) || l.Locked("200", a) {
		t.Fatal("trusted address banned")
	}
}

func TestLockedAccountStillServesItsKnownPhone(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Config{Failures: 1000, AccountFailures: 5, Now: func() time.Time { return now }})
	phone := netip.MustParseAddr("192.0.2.1")
	l.Succeed(phone, "demo/200")
	for i := range 6 {
		l.Fail(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), "demo/200")
	}
	if !l.Locked("demo/200", netip.MustParseAddr("198.51.100.77")) {
		t.Fatal("a new address may still guess the locked account")
	}
	if l.Locked("demo/200", phone) {
		t.Fatal("the account's own phone was locked out")
	}
	if l.Locked("demo/201", netip.MustParseAddr("198.51.100.77")) {
		t.Fatal("another account was locked")
	}
}
