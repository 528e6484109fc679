package control

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callpark/callpark/events"
)

// LocationBucket is the JetStream key-value bucket of registrations: one
// key per account and node, "<customer>.<hex account>.<node>", holding the
// registration.updated event of that node's core. Each node writes its
// own; a control plane taking a partition over reads them.
const LocationBucket = "CALLPARK_LOCATIONS"

// LocationsKV is the registrations of every node in LocationBucket.
type LocationsKV struct{ kv jetstream.KeyValue }

// NewLocationsKV creates (or opens) LocationBucket with replicas copies.
func NewLocationsKV(ctx context.Context, nc *nats.Conn, replicas int) (*LocationsKV, error) {
	kv, err := bucket(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      LocationBucket,
		Description: "callpark registrations, by account and node",
		// Registrations last an hour at most; a node that died leaves
		// keys that expire (contacts carry their own expiry too).
		TTL:      2 * time.Hour,
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	})
	if err != nil {
		return nil, err
	}
	return &LocationsKV{kv: kv}, nil
}

func locationKey(customer, account, node string) string {
	return customer + "." + hex.EncodeToString([]byte(account)) + "." + node
}

// Put stores (or, with no contacts, deletes) a registration.updated event.
func (l *LocationsKV) Put(ctx context.Context, e *events.Event) error {
	key := locationKey(e.Customer, e.Account, e.Node)
	if len(e.Contacts) == 0 {
		err := l.kv.Delete(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		return err
	}
	data, err := e.Encode()
	if err != nil {
		return err
	}
	_, err = l.kv.Put(ctx, key, data)
	return err
}

// Load returns the stored registrations of the customers keep accepts,
// their expired contacts left out.
func (l *LocationsKV) Load(ctx context.Context, keep func(customer string) bool, now time.Time) ([]*events.Event, error) {
	w, err := l.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []*events.Event
	for {
		select {
		case en, ok := <-w.Updates():
			if !ok || en == nil {
				return out, nil
			}
			customer, _, _ := strings.Cut(en.Key(), ".")
			if !keep(customer) {
				continue
			}
			var e events.Event
			if json.Unmarshal(en.Value(), &e) != nil {
				continue
			}
			live := e.Contacts[:0]
			for _, ct := range e.Contacts {
				if ct.Expires.IsZero() || ct.Expires.After(now) {
					live = append(live, ct)
				}
			}
			if e.Contacts = live; len(live) > 0 {
				out = append(out, &e)
			}
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
