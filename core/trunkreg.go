package core

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/callpark/callpark/events"
	"github.com/callpark/callpark/internal/tick"
)

// TrunkRegistration is a trunk that registers to its carrier (outbound
// registration): REGISTER sip:<Registrar> for sip:<User>@<registrar host>,
// the carrier's challenge answered with Username and Password, refreshed
// at three quarters of the expiry the carrier grants.
type TrunkRegistration struct {
	Customer, Trunk string
	Registrar       string // host:port
	User            string // the AOR's user part
	Username        string
	Password        string
	Expiry          time.Duration // asked for; 0 means 300s
}

func (r TrunkRegistration) key() string { return r.Customer + "/" + r.Trunk }

// trunkRetry is how soon a failed registration is tried again.
const trunkRetry = 5 * time.Second

// registerTrunks keeps every trunk registration the directory lists
// running until ctx ends: a reload that adds, changes or removes one
// starts, restarts or stops it (checked every second).
func (c *Core) registerTrunks(ctx context.Context) {
	running := map[string]context.CancelFunc{}
	wanted := map[string]TrunkRegistration{}
	reconcile := func() {
		now := map[string]TrunkRegistration{}
		for _, r := range c.cfg.Directory.TrunkRegistrations() {
			now[r.key()] = r
		}
		for k, cancel := range running {
			if r, ok := now[k]; !ok || r != wanted[k] {
				cancel()
				delete(running, k)
			}
		}
		for k, r := range now {
			if _, ok := running[k]; ok {
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			running[k], wanted[k] = cancel, r
			go c.keepRegistered(rctx, r)
		}
	}
	reconcile()
	tick.Every(ctx, time.Second, reconcile)
	for _, cancel := range running {
		cancel()
	}
}

// keepRegistered registers r and refreshes it until ctx ends.
func (c *Core) keepRegistered(ctx context.Context, r TrunkRegistration) {
	defer c.recoverGoroutine("trunk registration")
	callID := uuid.NewString()
	cseq := uint32(1)
	registered := false
	gauge := c.metrics.trunkRegistered.WithLabelValues(r.Customer, r.Trunk)
	defer gauge.Set(0)
	for {
		granted, code, err := c.registerOnce(ctx, r, callID, &cseq)
		if ctx.Err() != nil {
			return
		}
		wait := trunkRetry
		e := &events.Event{Customer: r.Customer, Call: "trunk", Trunk: r.Trunk, Code: code}
		if err != nil {
			gauge.Set(0)
			e.Type, e.Reason = events.TrunkRegistrationFailed, err.Error()
			c.noisy.Warn("trunk registration failed", "customer", r.Customer, "trunk", r.Trunk, "code", code, "err", err)
			registered = false
		} else {
			gauge.Set(1)
			e.Type = events.TrunkRegistered
			if !registered {
				c.log.Info("trunk registered", "customer", r.Customer, "trunk", r.Trunk, "registrar", r.Registrar, "expires", granted)
			}
			registered = true
			wait = max(granted*3/4, time.Second)
		}
		c.publish(e)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// registerOnce sends one REGISTER (and its authenticated repeat) and
// returns the expiry granted.
func (c *Core) registerOnce(ctx context.Context, r TrunkRegistration, callID string, cseq *uint32) (time.Duration, int, error) {
	host, portS, err := net.SplitHostPort(r.Registrar)
	if err != nil {
		return 0, 0, fmt.Errorf("registrar %q: %w", r.Registrar, err)
	}
	port, _ := strconv.Atoi(portS)
	expiry := r.Expiry
	if expiry <= 0 {
		expiry = 300 * time.Second
	}
	aor := sip.Uri{Scheme: "sip", User: r.User, Host: host}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	params := sip.NewParams()
	params.Add("tag", "cp"+callID[:8])
	req.AppendHeader(&sip.FromHeader{Address: aor, Params: params})
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: *cseq, MethodName: sip.REGISTER})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: r.User, Host: c.cfg.Host, Port: c.cfg.Port}})
	exp := sip.ExpiresHeader(uint32(expiry / time.Second))
	req.AppendHeader(&exp)
	req.SetDestination(r.Registrar)

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := c.client.Do(rctx, req)
	*cseq++
	if err == nil && (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && r.Username != "" {
		res, err = c.client.DoDigestAuth(rctx, req, res, sipgo.DigestAuth{Username: r.Username, Password: r.Password})
		*cseq++
	}
	if err != nil {
		return 0, 0, err
	}
	if res.StatusCode != sip.StatusOK {
		return 0, res.StatusCode, fmt.Errorf("registrar answered %d %s", res.StatusCode, res.Reason)
	}
	granted := expiry
	if h := res.GetHeader("Expires"); h != nil {
		if s, err := strconv.Atoi(h.Value()); err == nil && s > 0 {
			granted = time.Duration(s) * time.Second
		}
	}
	if ct := res.Contact(); ct != nil {
		if v, ok := ct.Params.Get("expires"); ok {
			if s, err := strconv.Atoi(v); err == nil && s > 0 {
				granted = time.Duration(s) * time.Second
			}
		}
	}
	return granted, res.StatusCode, nil
}
