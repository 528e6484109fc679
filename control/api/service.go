package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/state"
	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// Name and Version of the micro service.
const (
	Name    = "callpark"
	Version = "1.0.0"
)

// Controller is what the service needs of the control plane;
// *control.Control implements it.
type Controller interface {
	ParkCall(ctx context.Context, customer, account, callID string, at control.Spot) (*state.Parked, error)
	RetrieveTo(ctx context.Context, customer string, from control.Spot, to control.Dest) (*control.Retrieval, error)
	Slots(customer string) ([]control.SlotState, error)
	Parked(customer string) ([]*state.Parked, error)
	Calls(customer, account string) ([]control.Call, error)
	CountAPIRequest(endpoint, code string)
}

// Config holds the service's dependencies.
type Config struct {
	Conn      *nats.Conn
	Control   Controller
	Dialplans func() *dialplans.Set
	Log       *slog.Logger
	// Timeout bounds one request's work; 0 means 10s.
	Timeout time.Duration
	// Now is the clock for ages; nil means time.Now.
	Now func() time.Time
	// Node and Owner, in a cluster: the node this service runs on, and
	// who decides for a customer now (control.Control.Owner); requests for
	// a customer of another node are forwarded there (forward.go).
	Node  string
	Owner func(customer string) (node string, mine bool)
}

// Service is the running micro service.
type Service struct {
	cfg Config
	svc micro.Service
	fwd *nats.Subscription
}

// Start registers the service and its endpoints on cfg.Conn; they answer
// once Start returns. Each endpoint handles its requests one at a time, in
// the order they arrive.
func Start(cfg Config) (*Service, error) {
	if cfg.Conn == nil || cfg.Control == nil || cfg.Dialplans == nil || cfg.Log == nil {
		return nil, errors.New("api: Conn, Control, Dialplans and Log are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg}
	svc, err := micro.AddService(cfg.Conn, micro.Config{
		Name:        Name,
		Version:     Version,
		Description: "callpark call-control API: park, retrieve, slots, parked, calls",
		Metadata:    map[string]string{"subjects": Prefix + ".<customer>.<op>", "token_header": TokenHeader},
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			cfg.Log.Warn("api service error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.svc = svc
	handlers := map[string]func(context.Context, *dialplans.Customer, []byte) (any, error){
		OpPark:     s.park,
		OpRetrieve: s.retrieve,
		OpSlots:    s.slots,
		OpParked:   s.parked,
		OpCalls:    s.calls,
	}
	served := map[string]micro.Handler{}
	for _, op := range Ops {
		served[op] = s.handler(op, handlers[op])
		err := svc.AddEndpoint(op, served[op],
			micro.WithEndpointSubject(Subject("*", op)),
			micro.WithEndpointMetadata(map[string]string{"format": "application/json"}))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("api: endpoint %s: %w", op, err)
		}
	}
	if cfg.Owner != nil {
		if s.fwd, err = s.serveForwarded(cfg.Node, served); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("api: forwarded requests: %w", err)
		}
	}
	// The subscriptions are in place on the server when Start returns.
	if err := cfg.Conn.Flush(); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("api: %w", err)
	}
	cfg.Log.Info("call-control API running", "subjects", Subject("<customer>", "<op>"))
	return s, nil
}

// Stop unsubscribes the endpoints; idempotent.
func (s *Service) Stop() error {
	if s.fwd != nil {
		_ = s.fwd.Unsubscribe()
	}
	return s.svc.Stop()
}

// Info is the micro service's description, as `nats micro info` shows it.
func (s *Service) Info() micro.Info { return s.svc.Info() }

// handler wraps fn with what every request needs: the customer from the
// subject, the token check, the reply, the metrics, and a recover so that no
// request can bring the process down.
func (s *Service) handler(op string, fn func(context.Context, *dialplans.Customer, []byte) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		code := "ok"
		defer func() { s.cfg.Control.CountAPIRequest(op, code) }()
		defer func() {
			if r := recover(); r != nil {
				s.cfg.Log.Error("api handler panic", "op", op, "subject", req.Subject(), "panic", r)
				code = CodeInternal
				s.respondError(req, &Error{Code: CodeInternal, Message: "internal error"})
			}
		}()
		if s.cfg.Owner != nil {
			if _, fwd := req.(*forwardedRequest); !fwd {
				node, mine := s.cfg.Owner(customerOf(req.Subject()))
				switch {
				case node == "" && !mine:
					code = CodeUnavailable
					s.respondError(req, &Error{Code: CodeUnavailable, Message: "no control plane holds this customer yet; try again"})
					return
				case !mine:
					code = "forwarded"
					s.forward(req, node)
					return
				}
			}
		}
		res, err := s.serve(req, fn)
		if err != nil {
			e := toError(err)
			code = e.Code
			s.cfg.Log.Info("api request failed", "op", op, "subject", req.Subject(), "code", e.Code, "err", e.Message)
			s.respondError(req, e)
			return
		}
		if err := req.RespondJSON(res); err != nil {
			s.cfg.Log.Warn("api reply failed", "op", op, "err", err)
		}
	}
}

func (s *Service) serve(req micro.Request, fn func(context.Context, *dialplans.Customer, []byte) (any, error)) (any, error) {
	customer := customerOf(req.Subject())
	data := bytes.TrimSpace(req.Data())
	if len(data) == 0 {
		data = []byte("{}")
	}
	var tok Request
	if err := json.Unmarshal(data, &map[string]json.RawMessage{}); err != nil {
		return nil, &Error{Code: CodeInvalidRequest, Message: "body is not a JSON object: " + err.Error()}
	}
	_ = json.Unmarshal(data, &tok) // a non-string token is caught by the strict decode below
	token := req.Headers().Get(TokenHeader)
	if token == "" {
		token = tok.Token
	}
	cust, err := s.authorize(customer, token)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	return fn(ctx, cust, data)
}

// authorize checks token against the customer of the subject. Unknown
// customers and wrong tokens get the same answer.
func (s *Service) authorize(customer, token string) (*dialplans.Customer, error) {
	var cust *dialplans.Customer
	if set := s.cfg.Dialplans(); set != nil {
		cust = set.Customer(customer)
	}
	if cust == nil || cust.API.Token == "" || token == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(cust.API.Token)) != 1 {
		return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("no valid API token for customer %q", customer)}
	}
	if !cust.Features.API {
		return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("the call-control API is switched off for customer %q", customer)}
	}
	return cust, nil
}

func (s *Service) respondError(req micro.Request, e *Error) {
	body, _ := json.Marshal(ErrorReply{Error: e})
	if err := req.Error(e.Code, e.Message, body); err != nil {
		s.cfg.Log.Warn("api error reply failed", "err", err)
	}
}

// customerOf returns the customer token of callpark.v1.api.<customer>.<op>.
func customerOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

// decode parses data strictly into v: unknown fields are refused, so a typo
// ("slott") is an invalid_request rather than a silent default.
func decode(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &Error{Code: CodeInvalidRequest, Message: "bad request: " + err.Error()}
	}
	if d.More() {
		return &Error{Code: CodeInvalidRequest, Message: "bad request: trailing data after the JSON object"}
	}
	return nil
}

// spot turns the slot | extension | random fields into a control.Spot;
// exactly one must be set.
func spot(slot, extension, random string, anyRandom bool) (control.Spot, error) {
	var spots []control.Spot
	if slot != "" {
		spots = append(spots, control.Spot{Kind: state.KindSlot, Number: slot})
	}
	if extension != "" {
		spots = append(spots, control.Spot{Kind: state.KindExtension, Number: extension})
	}
	if random != "" || anyRandom {
		spots = append(spots, control.Spot{Kind: state.KindRandom, Number: random})
	}
	if len(spots) != 1 {
		return control.Spot{}, &Error{Code: CodeInvalidRequest, Message: "give exactly one of slot, extension or random"}
	}
	for _, r := range spots[0].Number {
		if r < '0' || r > '9' {
			return control.Spot{}, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("%s %q: want digits", spots[0].Kind, spots[0].Number)}
		}
	}
	return spots[0], nil
}

func (s *Service) park(ctx context.Context, cust *dialplans.Customer, data []byte) (any, error) {
	var r ParkRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Account == "" {
		return nil, &Error{Code: CodeInvalidRequest, Message: "account is required"}
	}
	at, err := spot(r.Slot, r.Extension, "", r.Random)
	if err != nil {
		return nil, err
	}
	rec, err := s.cfg.Control.ParkCall(ctx, cust.Name, r.Account, r.CallID, at)
	if err != nil {
		return nil, err
	}
	return ParkReply{Parked: s.parkedCall(rec)}, nil
}

func (s *Service) retrieve(ctx context.Context, cust *dialplans.Customer, data []byte) (any, error) {
	var r RetrieveRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	from, err := spot(r.Slot, r.Extension, r.Random, false)
	if err != nil {
		return nil, err
	}
	var to control.Dest
	switch {
	case r.To == "":
		return nil, &Error{Code: CodeInvalidRequest, Message: "to is required: an account or a sip: URI"}
	case strings.HasPrefix(r.To, "sip:") || strings.HasPrefix(r.To, "sips:"):
		to.URI = r.To
	case strings.Trim(r.To, "0123456789") == "":
		to.Account = r.To
	default:
		return nil, &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf("to %q: want an account (digits) or a sip: URI", r.To)}
	}
	ret, err := s.cfg.Control.RetrieveTo(ctx, cust.Name, from, to)
	if err != nil {
		return nil, err
	}
	return RetrieveReply{Status: "ringing", CallID: ret.Leg, Parked: s.parkedCall(ret.Parked)}, nil
}

func (s *Service) slots(_ context.Context, cust *dialplans.Customer, data []byte) (any, error) {
	if err := decode(data, &Request{}); err != nil {
		return nil, err
	}
	ss, err := s.cfg.Control.Slots(cust.Name)
	if err != nil {
		return nil, err
	}
	out := SlotsReply{Slots: make([]Slot, 0, len(ss))}
	for _, st := range ss {
		sl := Slot{Slot: st.Slot.Number, Label: st.Slot.Label, Busy: st.Parked != nil}
		if st.Parked != nil {
			pc := s.parkedCall(st.Parked)
			sl.Parked = &pc
		}
		out.Slots = append(out.Slots, sl)
	}
	return out, nil
}

func (s *Service) parked(_ context.Context, cust *dialplans.Customer, data []byte) (any, error) {
	if err := decode(data, &Request{}); err != nil {
		return nil, err
	}
	ps, err := s.cfg.Control.Parked(cust.Name)
	if err != nil {
		return nil, err
	}
	out := ParkedReply{Parked: make([]ParkedCall, 0, len(ps))}
	for _, p := range ps {
		out.Parked = append(out.Parked, s.parkedCall(p))
	}
	return out, nil
}

func (s *Service) calls(_ context.Context, cust *dialplans.Customer, data []byte) (any, error) {
	var r CallsRequest
	if err := decode(data, &r); err != nil {
		return nil, err
	}
	if r.Account == "" {
		return nil, &Error{Code: CodeInvalidRequest, Message: "account is required"}
	}
	cs, err := s.cfg.Control.Calls(cust.Name, r.Account)
	if err != nil {
		return nil, err
	}
	out := CallsReply{Account: r.Account, Calls: make([]Call, 0, len(cs))}
	for _, c := range cs {
		call := Call{CallID: c.Leg.ID, State: c.Leg.State, Direction: c.Leg.Direction, Since: c.Leg.Created}
		switch {
		case c.Peer != nil:
			call.Party, call.PeerCallID = c.Peer.Party(), c.Peer.ID
		case c.Leg.Direction == events.Outbound:
			call.Party = c.Leg.From
		default:
			call.Party = c.Leg.To
		}
		out.Calls = append(out.Calls, call)
	}
	return out, nil
}

func (s *Service) parkedCall(p *state.Parked) ParkedCall {
	pc := ParkedCall{
		CallID: p.Channel,
		Kind:   p.Kind,
		Number: p.Number,
		Code:   p.Code,
		Parker: p.Parker,
		Caller: p.Party,
		Since:  p.Since.UTC(),
		Age:    s.cfg.Now().Sub(p.Since).Round(time.Millisecond).Seconds(),
	}
	if !p.Due.IsZero() {
		due := p.Due.UTC()
		pc.Due = &due
	}
	return pc
}

// ErrorOf maps an error of the control plane to the API's error, with its
// stable code: what every app of the control plane (the web console too)
// reports.
func ErrorOf(err error) *Error { return toError(err) }

// toError maps an error of the control plane to an API error.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	code := CodeInternal
	switch {
	case errors.Is(err, control.ErrNotFound):
		code = CodeNotFound
	case errors.Is(err, control.ErrBusy):
		code = CodeSlotBusy
	case errors.Is(err, control.ErrNotPermitted):
		code = CodeForbidden
	case errors.Is(err, control.ErrNotParked):
		code = CodeNotParked
	case errors.Is(err, control.ErrInvalid):
		code = CodeInvalidRequest
	default:
		var re *events.ReplyError
		if errors.As(err, &re) && re.Code == events.ErrUnavailable {
			code = CodeUnavailable
		}
	}
	msg := err.Error()
	for _, sentinel := range []error{control.ErrNotFound, control.ErrBusy, control.ErrNotPermitted, control.ErrNotParked, control.ErrInvalid} {
		msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
	}
	return &Error{Code: code, Message: msg}
}
