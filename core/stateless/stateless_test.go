package stateless

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// tx records what a transaction is asked to do.
type tx struct {
	sip.ServerTransaction
	sent       []*sip.Response
	terminated bool
}

func (t *tx) Respond(res *sip.Response) error { t.sent = append(t.sent, res); return nil }
func (t *tx) Terminate()                      { t.terminated = true }

func request(t *testing.T, raw string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Request)
}

const invite = "INVITE sip:201@demo SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n" +
	"From: <sip:200@demo>;tag=a\r\nTo: <sip:201@demo>%s\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"

// A refusal goes out once and its transaction ends; a new dialog's answer
// gets a tag its ACK is known by, an in-dialog one keeps the dialog's.
func TestRespondOnceAndMarkTheTag(t *testing.T) {
	for _, c := range []struct {
		name, toTag string
		marked      bool
	}{{"new", "", true}, {"in dialog", ";tag=ours", false}} {
		req := request(t, strings.Replace(invite, "%s", c.toTag, 1))
		tr := &tx{}
		if err := Respond(req, tr, sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)); err != nil {
			t.Fatal(err)
		}
		if len(tr.sent) != 1 || !tr.terminated {
			t.Fatalf("%s: %d answers sent, terminated %v; want one, terminated", c.name, len(tr.sent), tr.terminated)
		}
		tag, _ := tr.sent[0].To().Params.Get("tag")
		if c.marked != strings.HasPrefix(tag, tagPrefix) || (!c.marked && tag != "ours") {
			t.Errorf("%s: To tag %q", c.name, tag)
		}
		ack := request(t, strings.NewReplacer("INVITE sip:", "ACK sip:", "1 INVITE", "1 ACK", "%s", ";tag="+tag).Replace(invite))
		if IsACK(ack) != c.marked {
			t.Errorf("%s: IsACK(ACK with tag %q) = %v", c.name, tag, !c.marked)
		}
	}
	if IsACK(request(t, strings.Replace(invite, "%s", ";tag="+tagPrefix+"x", 1))) {
		t.Error("IsACK of an INVITE")
	}
}

// Whatever a peer sends, answering it statelessly and checking its ACK
// neither panics nor sends more than one answer; an answer to a request
// that had no To tag is marked, one to a request that had one keeps it.
func FuzzStateless(f *testing.F) {
	f.Add([]byte(strings.Replace(invite, "%s", "", 1)))
	f.Add([]byte(strings.Replace(invite, "%s", ";tag="+tagPrefix+"x", 1)))
	f.Add([]byte(strings.NewReplacer("INVITE sip:", "ACK sip:", "1 INVITE", "1 ACK", "%s", ";tag=sl-").Replace(invite)))
	f.Add([]byte("ACK sip:a SIP/2.0\r\nTo: ;tag\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := sip.ParseMessage(raw)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		_ = IsACK(req)
		if req.Method == sip.ACK {
			return // never answered
		}
		hadTag := req.To() != nil && req.To().Params.Has("tag")
		tr := &tx{}
		_ = Respond(req, tr, sip.NewResponseFromRequest(req, 401, "Unauthorized", nil))
		if len(tr.sent) != 1 || !tr.terminated {
			t.Fatalf("%d answers, terminated %v", len(tr.sent), tr.terminated)
		}
		if to := tr.sent[0].To(); to != nil && !hadTag {
			if tag, _ := to.Params.Get("tag"); !strings.HasPrefix(tag, tagPrefix) {
				t.Fatalf("answer to an untagged request has To tag %q", tag)
			}
		}
	})
}
