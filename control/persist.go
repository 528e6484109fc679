package control

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/mailbox"
)

// ParkedStore keeps the parked calls outside the control plane, so that a
// control plane restarted beside a running core finds them again and
// re-arms their automatic returns. ParkedKV is the JetStream one.
type ParkedStore interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// All returns every stored value.
	All(ctx context.Context) ([][]byte, error)
}

// ParkedBucket is the JetStream key-value bucket of parked calls, one key
// per park: "<customer>.<hex of the park key>".
const ParkedBucket = "CALLPARK_PARKED"

// ParkedKV is a ParkedStore in a JetStream key-value bucket.
type ParkedKV struct{ kv jetstream.KeyValue }

// NewParkedKV creates (or opens) ParkedBucket on nc with replicas copies.
func NewParkedKV(ctx context.Context, nc *nats.Conn, replicas int) (*ParkedKV, error) {
	kv, err := bucket(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      ParkedBucket,
		Description: "callpark parked calls and their automatic-return deadlines",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, err
	}
	return &ParkedKV{kv: kv}, nil
}

// bucket creates (or opens) one of callpark's KV buckets: one value per
// key (History 1), at least one replica.
func bucket(ctx context.Context, nc *nats.Conn, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cfg.History, cfg.Replicas = 1, max(cfg.Replicas, 1)
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("control: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Put stores value under key.
func (s *ParkedKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.kv.Put(ctx, key, value)
	return err
}

// Delete removes key.
func (s *ParkedKV) Delete(ctx context.Context, key string) error {
	err := s.kv.Purge(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// All returns every stored value.
func (s *ParkedKV) All(ctx context.Context) ([][]byte, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out [][]byte
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil {
				return out, nil // every current value delivered
			}
			out = append(out, e.Value())
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}

// parkedRecord is a parked call as stored: the park and what the control
// plane must know of its leg.
type parkedRecord struct {
	V        int          `json:"v"`
	Customer string       `json:"customer"`
	Key      string       `json:"key"`
	Channel  string       `json:"channel"`
	Kind     string       `json:"kind"`
	Number   string       `json:"number"`
	Code     string       `json:"code,omitempty"`
	Parker   string       `json:"parker,omitempty"`
	Party    events.Party `json:"party"`
	Since    time.Time    `json:"since"`
	Due      time.Time    `json:"due,omitzero"`
	Returns  int          `json:"returns,omitempty"`
	// Account and Direction of the parked leg.
	Account   string `json:"account,omitempty"`
	Direction string `json:"direction,omitempty"`
}

// kvKey is where the park key of customer is stored.
func kvKey(customer, key string) string { return customer + "." + hex.EncodeToString([]byte(key)) }

type parkID struct{ customer, key string }

// persister copies the parked table to a ParkedStore. Changes only mark a
// park key dirty; one goroutine writes what the state holds for it then, so
// the store converges on the state whatever the order of the changes.
type persister struct {
	store ParkedStore
	state *state.Store
	log   *slog.Logger
	// owns, when set, says whose parks this control plane may write.
	owns func(customer string) bool

	dirtyKeys *mailbox.Box[parkID]
}

func newPersister(store ParkedStore, st *state.Store, log *slog.Logger) *persister {
	return &persister{store: store, state: st, log: log, dirtyKeys: mailbox.New[parkID]()}
}

// dirty notes that the park of p's key changed.
func (ps *persister) dirty(p *state.Parked) {
	if ps.owns != nil && !ps.owns(p.Customer) {
		return // a partition handed over: its new holder keeps the store
	}
	ps.dirtyKeys.Put(parkID{p.Customer, p.Key})
}

// run writes dirty keys until ctx ends, then flushes what is left.
func (ps *persister) run(ctx context.Context) {
	for {
		select {
		case <-ps.dirtyKeys.Wake():
			ps.flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ps.flush(fctx)
			cancel()
			return
		}
	}
}

// flush writes every dirty key.
func (ps *persister) flush(ctx context.Context) {
	for {
		// A key changed many times is written once, with what the state
		// holds for it now.
		batch := map[string]parkID{}
		for _, id := range ps.dirtyKeys.Take() {
			batch[kvKey(id.customer, id.key)] = id
		}
		if len(batch) == 0 {
			return
		}
		for k, id := range batch {
			var err error
			if p := ps.state.Parked(id.customer, id.key); p != nil {
				var data []byte
				if data, err = json.Marshal(ps.record(p)); err == nil {
					err = ps.store.Put(ctx, k, data)
				}
			} else {
				err = ps.store.Delete(ctx, k)
			}
			if err != nil {
				ps.log.Warn("parked call not persisted", "customer", id.customer, "key", id.key, "err", err)
			}
		}
	}
}

func (ps *persister) record(p *state.Parked) *parkedRecord {
	r := &parkedRecord{
		V: 1, Customer: p.Customer, Key: p.Key, Channel: p.Channel, Kind: p.Kind, Number: p.Number,
		Code: p.Code, Parker: p.Parker, Party: p.Party, Since: p.Since, Due: p.Due, Returns: p.Returns,
	}
	if ch := ps.state.Channel(p.Channel); ch != nil {
		r.Account, r.Direction = ch.Account, ch.Direction
	}
	return r
}

// restore loads the persisted parks of the customers keep accepts into the
// state (each with a minimal record of its leg) after a restart or a
// partition takeover; the OnParked hook re-arms their returns. A leg the
// core no longer knows, or whose node is gone, is reported lost.
func (c *Control) restore(ctx context.Context, keep func(customer string) bool) {
	if c.persist == nil {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	values, err := c.persist.store.All(lctx)
	if err != nil {
		c.log.Error("parked calls not restored", "err", err)
		return
	}
	n := 0
	for _, v := range values {
		var r parkedRecord
		if err := json.Unmarshal(v, &r); err != nil || r.V != 1 || r.Channel == "" {
			c.log.Warn("dropping bad parked record", "err", err)
			continue
		}
		if !keep(r.Customer) {
			continue
		}
		p := &state.Parked{
			Customer: r.Customer, Key: r.Key, Channel: r.Channel, Kind: r.Kind, Number: r.Number,
			Code: r.Code, Parker: r.Parker, Party: r.Party, Since: r.Since, Due: r.Due, Returns: r.Returns,
		}
		// A side-effect-free probe: ring is refused (bad_state) on a leg
		// that is up, and not_found for a leg that is gone.
		if c.legGone(r.Channel) {
			c.log.Warn("parked call lost with its node", "customer", r.Customer, "key", r.Key, "call", r.Channel)
			c.lostRecord(p)
			c.persist.dirty(p) // deletes it: it is not in the state
			continue
		}
		if _, err := c.bus.Do(lctx, &events.Command{Op: events.OpRing, Customer: r.Customer, Call: r.Channel}); notFound(err) {
			c.log.Info("parked call gone while the control plane was away", "customer", r.Customer, "key", r.Key, "call", r.Channel)
			c.lostRecord(p)
			c.persist.dirty(p) // deletes it: it is not in the state
			continue
		}
		if c.store.Channel(r.Channel) == nil {
			ch := &state.Channel{
				ID: r.Channel, Customer: r.Customer, Account: r.Account, Direction: r.Direction,
				State: state.StateParked, Created: r.Since,
			}
			if r.Direction == events.Outbound {
				ch.To = r.Party
			} else {
				ch.From = r.Party
			}
			if err := c.store.UpsertChannel(ch); err != nil {
				continue
			}
		}
		if err := c.store.Park(p); err != nil && !errors.Is(err, state.ErrAlreadyParked) {
			c.log.Warn("parked call not restored", "customer", r.Customer, "key", r.Key, "err", err)
			continue
		}
		n++
	}
	c.log.Info("parked calls restored", "count", n)
}
