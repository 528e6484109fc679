package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/callpark/callpark/control"
	"github.com/callpark/callpark/control/api"
	"github.com/callpark/callpark/control/state"
)

// spotRequest names a parking spot: exactly one of slot, extension or
// random (a random number; for a park, "random": "any" draws one).
type spotRequest struct {
	Slot      string `json:"slot,omitempty"`
	Extension string `json:"extension,omitempty"`
	Random    string `json:"random,omitempty"`
}

func (r spotRequest) spot(anyRandom bool) (control.Spot, error) {
	var spots []control.Spot
	if r.Slot != "" {
		spots = append(spots, control.Spot{Kind: state.KindSlot, Number: r.Slot})
	}
	if r.Extension != "" {
		spots = append(spots, control.Spot{Kind: state.KindExtension, Number: r.Extension})
	}
	if r.Random != "" {
		n := r.Random
		if anyRandom && n == "any" {
			n = ""
		}
		spots = append(spots, control.Spot{Kind: state.KindRandom, Number: n})
	}
	if len(spots) != 1 {
		return control.Spot{}, badRequest("give exactly one of slot, extension or random")
	}
	if strings.Trim(spots[0].Number, "0123456789") != "" {
		return control.Spot{}, badRequest("a spot is digits")
	}
	return spots[0], nil
}

// badRequest is a fault in the request itself: 400 invalid_request.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// handle serves one action: it decodes the JSON body into a Req (unknown
// fields refused), runs do and answers its result as JSON, or its error:
// 400 for a badRequest, else the API's code (fail).
func handle[Req any](s *Server, do func(r *http.Request, x *session, req Req) (any, error)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, x *session) {
		var req Req
		d := json.NewDecoder(r.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "bad request: "+err.Error())
			return
		}
		res, err := do(r, x, req)
		var bad badRequest
		switch {
		case errors.As(err, &bad):
			writeError(w, http.StatusBadRequest, "invalid_request", string(bad))
		case err != nil:
			s.fail(w, err)
		default:
			writeJSON(w, res)
		}
	}
}

// digits reports whether s is a non-empty string of decimal digits.
func digits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

type parkRequest struct {
	spotRequest
	CallID string `json:"call_id,omitempty"`
}

// park parks the other party of the signed-in account's call.
func (s *Server) park(r *http.Request, x *session, req parkRequest) (any, error) {
	if x.account == "" {
		return nil, badRequest("an API-token session has no phone: sign in with an extension to park its calls")
	}
	at, err := req.spot(true)
	if err != nil {
		return nil, err
	}
	rec, err := s.cfg.Control.ParkCall(r.Context(), x.customer, x.account, req.CallID, at)
	if err != nil {
		return nil, err
	}
	return map[string]any{"parked": parked(rec)}, nil
}

type retrieveRequest struct {
	spotRequest
	To string `json:"to,omitempty"`
}

// retrieve rings to (default: the signed-in account) with a parked call.
func (s *Server) retrieve(r *http.Request, x *session, req retrieveRequest) (any, error) {
	from, err := req.spot(false)
	if err != nil {
		return nil, err
	}
	to := req.To
	if to == "" {
		to = x.account
	}
	if !digits(to) {
		return nil, badRequest("to: an extension")
	}
	ret, err := s.cfg.Control.RetrieveTo(r.Context(), x.customer, from, control.Dest{Account: to})
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": "ringing", "call_id": ret.Leg, "to": to, "parked": parked(ret.Parked)}, nil
}

// hangup hangs up a parked call.
func (s *Server) hangup(r *http.Request, x *session, req spotRequest) (any, error) {
	at, err := req.spot(false)
	if err != nil {
		return nil, err
	}
	rec, err := s.cfg.Control.HangupParked(r.Context(), x.customer, at)
	if err != nil {
		return nil, err
	}
	return map[string]any{"hung_up": parked(rec)}, nil
}

type moveRequest struct {
	spotRequest
	ToSlot string `json:"to_slot"`
}

// move moves a parked call onto a free slot.
func (s *Server) move(r *http.Request, x *session, req moveRequest) (any, error) {
	from, err := req.spot(false)
	if err != nil || !digits(req.ToSlot) {
		return nil, badRequest("give the parked spot and to_slot")
	}
	rec, err := s.cfg.Control.MoveParked(r.Context(), x.customer, from, control.Spot{Kind: state.KindSlot, Number: req.ToSlot})
	if err != nil {
		return nil, err
	}
	return map[string]any{"parked": parked(rec)}, nil
}

// fail answers a control-plane error with the API's stable code and the
// matching HTTP status.
func (s *Server) fail(w http.ResponseWriter, err error) {
	e := api.ErrorOf(err)
	status := map[string]int{
		api.CodeNotFound: http.StatusNotFound, api.CodeNotParked: http.StatusNotFound,
		api.CodeSlotBusy: http.StatusConflict, api.CodeForbidden: http.StatusForbidden,
		api.CodeInvalidRequest: http.StatusBadRequest, api.CodeUnavailable: http.StatusServiceUnavailable,
	}[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
		s.cfg.Log.Warn("console action failed", "err", err)
	}
	writeError(w, status, e.Code, e.Message)
}
