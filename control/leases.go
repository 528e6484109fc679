package control

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Leases hold the partitions of a cluster's control planes: one holder per
// key, which must renew it before LeaseTTL passes.
type Leases interface {
	// Acquire takes key for node when it is free, or held by node itself
	// (a node restarted under its name); ok is false when another holds it.
	Acquire(ctx context.Context, key, node string) (rev uint64, ok bool, err error)
	// Renew keeps key, held at rev; an error means it is lost.
	Renew(ctx context.Context, key, node string, rev uint64) (uint64, error)
	// Release gives key up.
	Release(ctx context.Context, key string, rev uint64) error
	// Holder returns who holds key ("" when nobody does).
	Holder(ctx context.Context, key string) (string, error)
}

// LeaseBucket is the JetStream key-value bucket of partition leases.
const LeaseBucket = "CALLPARK_LEASES"

// LeaseTTL is how long a lease lives without renewal: a dead node's
// partitions are taken over within it (plus one renewal period).
const LeaseTTL = 3 * time.Second

// LeasesKV keeps leases in LeaseBucket: a key's value is its holder, taken
// with Create (one winner) and renewed with Update on its revision (a
// holder that lost it cannot renew it by mistake); entries expire after
// LeaseTTL.
type LeasesKV struct{ kv jetstream.KeyValue }

// NewLeasesKV creates (or opens) LeaseBucket with replicas copies.
func NewLeasesKV(ctx context.Context, nc *nats.Conn, replicas int) (*LeasesKV, error) {
	kv, err := bucket(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "callpark control-plane partition leases",
		TTL:         LeaseTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return &LeasesKV{kv: kv}, nil
}

// Acquire implements Leases.
func (l *LeasesKV) Acquire(ctx context.Context, key, node string) (uint64, bool, error) {
	rev, err := l.kv.Create(ctx, key, []byte(node))
	if err == nil {
		return rev, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, err
	}
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil // expired meanwhile: next round
	}
	if err != nil {
		return 0, false, err
	}
	if string(e.Value()) != node {
		return 0, false, nil
	}
	rev, err = l.kv.Update(ctx, key, []byte(node), e.Revision())
	if err != nil {
		return 0, false, nil
	}
	return rev, true, nil
}

// Renew implements Leases.
func (l *LeasesKV) Renew(ctx context.Context, key, node string, rev uint64) (uint64, error) {
	return l.kv.Update(ctx, key, []byte(node), rev)
}

// Release implements Leases.
func (l *LeasesKV) Release(ctx context.Context, key string, rev uint64) error {
	return l.kv.Delete(ctx, key, jetstream.LastRevision(rev))
}

// Holder implements Leases.
func (l *LeasesKV) Holder(ctx context.Context, key string) (string, error) {
	e, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}
