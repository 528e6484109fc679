package pbxtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// Hostile is one message of the hostile corpus: what a scanner, a fuzzer
// or a forger sends to a SIP port.
type Hostile struct {
	Name string
	// Want is the status the service must answer with ("" when any answer,
	// or none, is acceptable: unparsable bytes, an ACK, no Via to answer to).
	Want string
	// Raw is the message; the placeholders LOCAL (the sender's host:port)
	// and TRANSPORT (UDP or TCP) are filled in when it is sent.
	Raw string
}

// Methods covered by the corpus: every one callpark serves, some it does
// not, and one nobody does.
var hostileMethods = []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "REFER",
	"SUBSCRIBE", "NOTIFY", "INFO", "UPDATE", "PRACK", "MESSAGE", "PUBLISH", "FOO"}

const goodSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"

// hostileHeaders is a complete request's header list, in order.
func hostileHeaders(method, domain, callID, fromTag, toTag string) [][2]string {
	to := "<sip:201@" + domain + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	h := [][2]string{
		{"Via", "SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK-" + fmt.Sprint(rand.Uint64()) + ";rport"},
		{"From", "<sip:200@" + domain + ">;tag=" + fromTag},
		{"To", to},
		{"Call-ID", callID},
		{"CSeq", "7 " + method},
		{"Max-Forwards", "70"},
		{"Contact", "<sip:200@LOCAL>"},
	}
	switch method {
	case "REFER":
		h = append(h, [2]string{"Refer-To", "<sip:*70333@" + domain + ">"})
	case "SUBSCRIBE", "NOTIFY":
		h = append(h, [2]string{"Event", "dialog"})
	case "INFO":
		h = append(h, [2]string{"Content-Type", "application/dtmf-relay"})
	}
	return h
}

func render(method, ruri string, headers [][2]string, body string) string {
	var b strings.Builder
	b.WriteString(method + " " + ruri + " SIP/2.0\r\n")
	for _, h := range headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if body != "" && !hasHeader(headers, "Content-Type") {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	if !hasHeader(headers, "Content-Length") {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

func hasHeader(hs [][2]string, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h[0], name) {
			return true
		}
	}
	return false
}

func without(hs [][2]string, name string) [][2]string {
	var out [][2]string
	for _, h := range hs {
		if !strings.EqualFold(h[0], name) {
			out = append(out, h)
		}
	}
	return out
}

func with(hs [][2]string, name, value string) [][2]string {
	out := append([][2]string{}, hs...)
	return append(out, [2]string{name, value})
}

func replace(hs [][2]string, name, value string) [][2]string {
	return with(without(hs, name), name, value)
}

// HostileCorpus builds the corpus against domain: every mandatory header
// missing and duplicated for every method, in and out of dialog, bad
// CSeq, bad Content-Length, truncated, oversized, garbage and bad SDP;
// and, when liveCallID is not "", in-dialog requests carrying a live call's
// Call-ID with wrong tags.
func HostileCorpus(domain, liveCallID string) []Hostile {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []Hostile
	add := func(name, want, raw string) { out = append(out, Hostile{Name: name, Want: want, Raw: raw}) }
	ruri := "sip:201@" + domain
	for _, m := range hostileMethods {
		for _, inDialog := range []bool{false, true} {
			toTag, where := "", "out of dialog"
			if inDialog {
				toTag, where = "their-tag", "in dialog"
			}
			callID := fmt.Sprintf("hostile-%d@corpus", rng.Uint64())
			hs := hostileHeaders(m, domain, callID, "our-tag", toTag)
			body := ""
			if m == "INVITE" {
				body = goodSDP
			}
			want := func(code string) string {
				if m == "ACK" {
					return "" // never answered
				}
				return code
			}
			add(m+" "+where, "", render(m, ruri, hs, body))
			for _, h := range []string{"From", "To", "Call-ID", "CSeq", "Max-Forwards"} {
				add(fmt.Sprintf("%s %s without %s", m, where, h), want("400"), render(m, ruri, without(hs, h), body))
			}
			add(m+" "+where+" without Via", "", render(m, ruri, without(hs, "Via"), body))
			for _, h := range []string{"From", "To", "Call-ID", "CSeq"} {
				var v string
				for _, x := range hs {
					if x[0] == h {
						v = x[1]
					}
				}
				if h == "CSeq" {
					v = "8 " + m
				} else if h == "Call-ID" {
					v = "other-" + callID
				}
				add(fmt.Sprintf("%s %s duplicate %s", m, where, h), want("400"), render(m, ruri, with(hs, h, v), body))
			}
			other := "OPTIONS"
			if m == "OPTIONS" {
				other = "INFO"
			}
			add(m+" "+where+" CSeq method mismatch", want("400"), render(m, ruri, replace(hs, "CSeq", "7 "+other), body))
			add(m+" "+where+" CSeq garbage", "", render(m, ruri, replace(hs, "CSeq", "x y z"), body))
			add(m+" "+where+" Content-Length too big", "", render(m, ruri, with(hs, "Content-Length", "5000"), body))
			add(m+" "+where+" Content-Length negative", "", render(m, ruri, with(hs, "Content-Length", "-4"), body))
			add(m+" "+where+" Content-Length garbage", "", render(m, ruri, with(hs, "Content-Length", "lots"), body))
			add(m+" "+where+" Max-Forwards 0", "", render(m, ruri, replace(hs, "Max-Forwards", "0"), body))
			full := render(m, ruri, hs, body)
			add(m+" "+where+" truncated", "", full[:len(full)/2])
			add(m+" "+where+" cut in the start line", "", full[:len(m)+4])
			add(m+" "+where+" From without host", "", render(m, ruri, replace(hs, "From", "<sip:200@>;tag=x"), body))
			add(m+" "+where+" bad Request-URI", "", render(m, "not-a-uri", hs, body))
			add(m+" "+where+" huge header", "", render(m, ruri, with(hs, "X-Junk", strings.Repeat("A", 20000)), body))
		}
	}
	// Oversized: past callpark's 16 KB body limit, and past sipgo's 32 KB
	// datagram buffer (cut short there, then unparsable: dropped).
	big := hostileHeaders("INVITE", domain, "big@corpus", "t", "")
	add("INVITE with a 20 KB body", "413", render("INVITE", ruri, big, goodSDP+strings.Repeat("a=x:"+strings.Repeat("y", 90)+"\r\n", 210)))
	add("INVITE with a 60 KB body", "", render("INVITE", ruri, big, goodSDP+strings.Repeat("a=x:"+strings.Repeat("y", 90)+"\r\n", 620)))
	add("MESSAGE with a 64 KB body", "", render("MESSAGE", ruri, with(big, "Content-Type", "text/plain"), strings.Repeat("z", 64000)))

	// SDP an attacker would send with a new INVITE.
	for _, sdp := range []struct{ name, body string }{
		{"garbage SDP", "this is not sdp\r\n"},
		{"SDP without m=", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"},
		{"SDP without c=", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"},
		{"SDP video only", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n"},
		{"SDP port 99999", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n"},
		{"SDP bad address", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 999.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"},
		{"SDP 500 m-lines", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + strings.Repeat("m=audio 4000 RTP/AVP 0\r\n", 500)},
		{"SDP two v= lines", "v=0\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"},
		{"SDP binary", "v=0\r\n\x00\x01\x02\xff\xfe\r\nm=audio\r\n"},
	} {
		hs := hostileHeaders("INVITE", domain, fmt.Sprintf("sdp-%d@corpus", rng.Uint64()), "t", "")
		add("INVITE "+sdp.name, "", render("INVITE", ruri, hs, sdp.body))
	}
	// Garbage and half-messages.
	for i := range 8 {
		b := make([]byte, 40+rng.IntN(600))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		add(fmt.Sprintf("random bytes %d", i), "", string(b))
	}
	add("start line only", "", "INVITE sip:201@"+domain+" SIP/2.0\r\n\r\n")
	add("empty request line", "", "\r\n\r\nVia: x\r\n\r\n")
	add("header without colon", "", "OPTIONS sip:"+domain+" SIP/2.0\r\nVia SIP/2.0/UDP LOCAL\r\n\r\n")
	add("NUL bytes in headers", "", render("OPTIONS", ruri, with(hostileHeaders("OPTIONS", domain, "nul@corpus", "t", ""), "X-N", "a\x00b"), ""))
	add("response without headers", "", "SIP/2.0 200 OK\r\n\r\n")
	add("response with a foreign branch", "", "SIP/2.0 200 OK\r\nVia: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK-nope\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: nope\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	add("response missing To and Call-ID", "", "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK-nope\r\nFrom: <sip:a@b>;tag=1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	add("compact form soup", "", "OPTIONS sip:"+domain+" SIP/2.0\r\nv: SIP/2.0/TRANSPORT LOCAL;branch=z9hG4bK-c\r\nf: <sip:200@"+domain+">;tag=1\r\nt: <sip:200@"+domain+">\r\ni: compact@corpus\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")

	// A live call's Call-ID with tags that are not its own.
	if liveCallID != "" {
		for _, m := range []string{"BYE", "REFER", "INVITE", "INFO", "NOTIFY", "UPDATE", "PRACK", "ACK", "CANCEL"} {
			hs := hostileHeaders(m, domain, liveCallID, "forged-from", "forged-to")
			body := ""
			if m == "INVITE" {
				body = strings.Replace(goodSDP, "m=audio", "a=sendonly\r\nm=audio", 1)
			}
			want := "481"
			if m == "ACK" || m == "CANCEL" {
				want = ""
			}
			add(m+" forged into a live call", want, render(m, ruri, hs, body))
		}
	}
	return out
}

// SendHostile sends each message to addr over network ("udp" or "tcp"),
// each from its own socket, and returns the status line answered to each
// ("" for none within wait). Up to 32 are in flight at once.
func SendHostile(addr, network string, corpus []Hostile, wait time.Duration) []string {
	got := make([]string, len(corpus))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, h := range corpus {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			got[i] = sendOne(addr, network, h.Raw, wait)
		})
	}
	wg.Wait()
	return got
}

func sendOne(addr, network, raw string, wait time.Duration) string {
	c, err := net.Dial(network, addr)
	if err != nil {
		return "dial error: " + err.Error()
	}
	defer c.Close()
	if _, err := c.Write([]byte(fill(raw, c, network))); err != nil {
		return ""
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(wait)
	var pending string
	for {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		pending += string(buf[:n])
		for {
			line, rest, ok := strings.Cut(pending, "\r\n")
			if !ok {
				break
			}
			pending = rest
			if strings.HasPrefix(line, "SIP/2.0 ") && !strings.HasPrefix(line, "SIP/2.0 1") {
				return line
			}
		}
		if network == "udp" {
			pending = ""
		}
	}
}

// ForgeInDialog is a request that matches a dialog (Call-ID, the caller's
// tag in From, the PBX's tag in To) as the caller 200 calling 201 would send
// it; sent from any other socket it is a forgery.
func ForgeInDialog(method, domain, callID, fromTag, toTag string) Hostile {
	hs := hostileHeaders(method, domain, callID, fromTag, toTag)
	body := ""
	if method == "INVITE" {
		body = strings.Replace(goodSDP, "m=audio", "a=sendonly\r\nm=audio", 1)
	}
	return Hostile{Name: "forged " + method, Want: "481", Raw: render(method, "sip:201@"+domain, hs, body)}
}

// NewInvite is a new call from 200 to 201 in domain, with an offer, as a
// phone would send it (no authentication).
func NewInvite(domain string) Hostile {
	hs := hostileHeaders("INVITE", domain, fmt.Sprintf("new-%d", rand.Uint64()), fmt.Sprint(rand.Uint32()), "")
	return Hostile{Name: "new INVITE", Raw: render("INVITE", "sip:201@"+domain, hs, goodSDP)}
}
