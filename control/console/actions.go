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
		return control.Spot{}, errors.New("give exactly one of slot, extension or random")
	}
	if strings.Trim(spots[0].Number, "0123456789") != "" {
		return control.Spot{}, errors.New("a spot is digits")
	}
	return spots[0], nil
}

// spotOf is req's spot, or false after answering 400.
func spotOf(w http.ResponseWriter, req spotRequest, anyRandom bool) (control.Spot, bool) {
	at, err := req.spot(anyRandom)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return control.Spot{}, false
	}
	return at, true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "bad request: "+err.Error())
		return false
	}
	return true
}

// park parks the other party of the signed-in account's call.
func (s *Server) park(w http.ResponseWriter, r *http.Request, x *session) {
	var req struct {
		spotRequest
		CallID string `json:"call_id,omitempty"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	if x.account == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "an API-token session has no phone: sign in with an extension to park its calls")
		return
	}
	at, ok := spotOf(w, req.spotRequest, true)
	if !ok {
		return
	}
	rec, err := s.cfg.Control.ParkCall(r.Context(), x.customer, x.account, req.CallID, at)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"parked": parked(rec)})
}

// retrieve rings to (default: the signed-in account) with a parked call.
func (s *Server) retrieve(w http.ResponseWriter, r *http.Request, x *session) {
	var req struct {
		spotRequest
		To string `json:"to,omitempty"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	from, ok := spotOf(w, req.spotRequest, false)
	if !ok {
		return
	}
	to := req.To
	if to == "" {
		to = x.account
	}
	if to == "" || strings.Trim(to, "0123456789") != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "to: an extension")
		return
	}
	ret, err := s.cfg.Control.RetrieveTo(r.Context(), x.customer, from, control.Dest{Account: to})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"status": "ringing", "call_id": ret.Leg, "to": to, "parked": parked(ret.Parked)})
}

// hangup hangs up a parked call.
func (s *Server) hangup(w http.ResponseWriter, r *http.Request, x *session) {
	var req spotRequest
	if !decodeBody(w, r, &req) {
		return
	}
	at, ok := spotOf(w, req, false)
	if !ok {
		return
	}
	rec, err := s.cfg.Control.HangupParked(r.Context(), x.customer, at)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"hung_up": parked(rec)})
}

// move moves a parked call onto a free slot.
func (s *Server) move(w http.ResponseWriter, r *http.Request, x *session) {
	var req struct {
		spotRequest
		ToSlot string `json:"to_slot"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	from, err := req.spot(false)
	if err != nil || req.ToSlot == "" || strings.Trim(req.ToSlot, "0123456789") != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "give the parked spot and to_slot")
		return
	}
	rec, err := s.cfg.Control.MoveParked(r.Context(), x.customer, from, control.Spot{Kind: state.KindSlot, Number: req.ToSlot})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{"parked": parked(rec)})
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
