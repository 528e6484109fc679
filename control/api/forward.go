package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// In a cluster every node serves the API, but one control plane at a time
// decides for a customer (control/cluster.go). A request that lands on
// another node is forwarded, unchanged, to the owner on
// callpark.v1.control.<node>.api.<customer>.<op>, a subject no customer may
// publish to (Permissions); the owner checks the token as always and its
// answer goes back as is.

// ForwardPrefix is the root of forwarded requests' subjects.
const ForwardPrefix = "callpark.v1.control"

func forwardSubject(node, subject string) string {
	return ForwardPrefix + "." + node + "." + subject[len("callpark.v1."):]
}

// forwarded turns a forwarded subject back into the API subject.
func forwarded(subject string) string {
	// callpark.v1.control.<node>.api.<customer>.<op>
	parts := strings.SplitN(subject, ".", 5)
	if len(parts) < 5 {
		return subject
	}
	return "callpark.v1." + parts[4]
}

// forward relays req to the control plane of node.
func (s *Service) forward(req micro.Request, node string) {
	msg := nats.NewMsg(forwardSubject(node, req.Subject()))
	msg.Data = req.Data()
	for k, v := range req.Headers() {
		msg.Header[k] = v
	}
	res, err := s.cfg.Conn.RequestMsg(msg, s.cfg.Timeout+time.Second)
	if err != nil {
		s.respondError(req, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("node %s did not answer: %v", node, err)})
		return
	}
	_ = req.Respond(res.Data, micro.WithHeaders(micro.Headers(res.Header)))
}

// serveForwarded answers the requests other nodes forward to node.
func (s *Service) serveForwarded(node string, handlers map[string]micro.Handler) (*nats.Subscription, error) {
	return s.cfg.Conn.Subscribe(ForwardPrefix+"."+node+".api.>", func(m *nats.Msg) {
		subject := forwarded(m.Subject)
		op := subject[strings.LastIndexByte(subject, '.')+1:]
		h, ok := handlers[op]
		if !ok {
			return
		}
		h.Handle(&forwardedRequest{msg: m, subject: subject})
	})
}

// forwardedRequest is a forwarded message as a micro.Request.
type forwardedRequest struct {
	msg     *nats.Msg
	subject string
}

func (r *forwardedRequest) Respond(data []byte, opts ...micro.RespondOpt) error {
	res := nats.NewMsg(r.msg.Reply)
	res.Data = data
	for _, o := range opts {
		o(res)
	}
	return r.msg.RespondMsg(res)
}

func (r *forwardedRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	data, err := json.Marshal(v)
	if err != nil {
		return r.Error("500", err.Error(), nil)
	}
	return r.Respond(data, opts...)
}

func (r *forwardedRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	res := nats.NewMsg(r.msg.Reply)
	res.Data = data
	for _, o := range opts {
		o(res)
	}
	res.Header.Set(micro.ErrorHeader, description)
	res.Header.Set(micro.ErrorCodeHeader, code)
	return r.msg.RespondMsg(res)
}

func (r *forwardedRequest) Data() []byte           { return r.msg.Data }
func (r *forwardedRequest) Headers() micro.Headers { return micro.Headers(r.msg.Header) }
func (r *forwardedRequest) Subject() string        { return r.subject }
func (r *forwardedRequest) Reply() string          { return r.msg.Reply }
