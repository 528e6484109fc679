package sdp

import (
	"net/netip"
	"strings"
	"testing"
)

// Offers as phones send them.
const (
	baresipOffer = "v=0\r\no=- 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 10002 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
	// linphone offers video too, and names the RTCP port.
	linphoneOffer = "v=0\r\no=200 123 456 IN IP4 127.0.0.1\r\ns=Talk\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"a=rtcp-xr:rcvr-rtt=all:10000\r\n" +
		"m=audio 7078 RTP/AVP 96 97 98 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n" +
		"a=rtpmap:97 speex/16000\r\na=rtpmap:98 speex/8000\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:7079\r\n" +
		"m=video 9078 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
	srtpOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/SAVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n" +
		"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n"
)

func TestParsePhones(t *testing.T) {
	s, err := Parse([]byte(baresipOffer))
	if err != nil {
		t.Fatal(err)
	}
	m := s.AudioMedia()
	if m == nil || m.Port != 10002 || m.Addr != netip.MustParseAddr("127.0.0.1") || m.Direction != SendRecv || m.Hold() {
		t.Fatalf("baresip: %+v", m)
	}
	c, ok := m.Negotiate()
	if !ok || c != (Codec{PT: 0, Ulaw: true, DTMF: 101, HasDTMF: true}) {
		t.Fatalf("baresip codec %+v %v", c, ok)
	}

	s, err = Parse([]byte(linphoneOffer))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Media) != 2 || s.Audio != 0 || s.Media[0].RTCPPort != 7079 {
		t.Fatalf("linphone: %+v", s)
	}
	c, ok = s.AudioMedia().Negotiate()
	if !ok || c.PT != 0 || !c.Ulaw || c.DTMF != 101 {
		t.Fatalf("linphone codec %+v", c)
	}

	s, err = Parse([]byte(srtpOffer))
	if err != nil {
		t.Fatal(err)
	}
	m = s.AudioMedia()
	if m.Proto != ProfileSRTP || len(m.Crypto) != 2 || m.Crypto[0].Suite != "AES_CM_128_HMAC_SHA1_80" ||
		m.Crypto[0].Key != "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" || m.Crypto[1].Tag != 2 {
		t.Fatalf("srtp: %+v", m)
	}
	if c, _ := m.Negotiate(); c.PT != PCMA || c.Ulaw {
		t.Fatalf("srtp codec %+v: the offerer's first G.711 wins", c)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"empty":            "",
		"garbage":          "garbage",
		"two versions":     "v=0\r\nv=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
		"no version":       "c=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
		"short c":          "v=0\r\nc=0\r\nm=audio 1 RTP/AVP 0\r\n",
		"bad address":      "v=0\r\nc=IN IP4 example.com\r\nm=audio 1 RTP/AVP 0\r\n",
		"ip6 as ip4":       "v=0\r\nc=IN IP4 ::1\r\nm=audio 1 RTP/AVP 0\r\n",
		"no connection":    "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
		"short m":          "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1\r\n",
		"bad port":         "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
		"not a line":       "v=0\r\nhello\r\n",
		"too many fmts":    "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP" + strings.Repeat(" 0", 65) + "\r\n",
		"too many media":   "v=0\r\nc=IN IP4 1.2.3.4\r\n" + strings.Repeat("m=audio 1 RTP/AVP 0\r\n", 17),
		"version 1":        "v=1\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
		"oversized":        "v=0\r\n" + strings.Repeat("a=x\r\n", 4000),
		"empty connection": "v=0\r\nc=\r\nm=audio 1 RTP/AVP 0\r\n",
	} {
		if _, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// No audio is not malformed: the caller refuses it (488).
	s, err := Parse([]byte("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 96\r\n"))
	if err != nil || s.AudioMedia() != nil {
		t.Fatalf("video only: %v, %+v", err, s)
	}
	if c, ok := (&Media{Formats: []Format{{PT: 18, Name: "g729", Rate: 8000}}}).Negotiate(); ok {
		t.Fatalf("g729 negotiated %+v", c)
	}
}

func TestHold(t *testing.T) {
	for body, want := range map[string]bool{
		baresipOffer: false,
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n": true,
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n": true,
		"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n":                 true,
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\n": false,
		// A session-level direction applies to every stream.
		"v=0\r\nc=IN IP4 127.0.0.1\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n": true,
		// A media-level c= overrides the session's.
		"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n": false,
	} {
		s, err := Parse([]byte(body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if got := s.AudioMedia().Hold(); got != want {
			t.Errorf("Hold(%q) = %v, want %v", body, got, want)
		}
	}
}

func TestAnswerAndOfferRoundTrip(t *testing.T) {
	offer, _ := Parse([]byte(linphoneOffer))
	c, _ := offer.AudioMedia().Negotiate()
	local := Local{Addr: netip.MustParseAddrPort("192.0.2.9:30000"), Session: 7, Version: 8}
	ans := Answer(offer, c, local)
	a, err := Parse(ans)
	if err != nil {
		t.Fatalf("our answer does not parse: %v\n%s", err, ans)
	}
	if len(a.Media) != 2 || a.Media[1].Port != 0 || a.Media[1].Type != "video" || a.Media[1].Fmts != "96" {
		t.Fatalf("the video stream is not refused: %s", ans)
	}
	m := a.AudioMedia()
	got, ok := m.Negotiate()
	if !ok || got != c || m.Port != 30000 || m.Addr != local.Addr.Addr() || m.Direction != SendRecv {
		t.Fatalf("answer %+v codec %+v\n%s", m, got, ans)
	}
	if !strings.Contains(string(ans), "o=callpark 7 8 IN IP4 192.0.2.9\r\n") {
		t.Fatalf("origin line: %s", ans)
	}

	// A hold offer gets recvonly; inactive stays inactive.
	hold, _ := Parse([]byte("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 8 0\r\na=sendonly\r\n"))
	hc, _ := hold.AudioMedia().Negotiate()
	ha, _ := Parse(Answer(hold, hc, local))
	if d := ha.AudioMedia().Direction; d != RecvOnly {
		t.Fatalf("answer to sendonly: %s", d)
	}
	if hc.HasDTMF || hc.PT != PCMA {
		t.Fatalf("hold codec %+v", hc)
	}

	key := &Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", Key: "abcd"}
	o, err := Parse(Offer(Local{Addr: netip.MustParseAddrPort("[2001:db8::5]:4000"), Crypto: key}))
	if err != nil {
		t.Fatal(err)
	}
	om := o.AudioMedia()
	if om.Proto != ProfileSRTP || len(om.Crypto) != 1 || om.Crypto[0] != *key || om.Addr != netip.MustParseAddr("2001:db8::5") {
		t.Fatalf("offer %+v", om)
	}
	if oc, _ := om.Negotiate(); oc != (Codec{PT: 0, Ulaw: true, DTMF: 101, HasDTMF: true}) {
		t.Fatalf("offer codec %+v", oc)
	}
}

// FuzzParse: Parse reads descriptions from the network and must never
// panic; whatever it accepts, Answer must write something Parse accepts.
func FuzzParse(f *testing.F) {
	for _, s := range []string{baresipOffer, linphoneOffer, srtpOffer,
		"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 1 RTP/AVP 0\r\na=inactive\r\n", "m=audio x", "v=0\nc=IN IP6 ::1\nm=audio 5/2 RTP/AVP 0\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		m := s.AudioMedia()
		if m == nil {
			return
		}
		m.Hold()
		c, ok := m.Negotiate()
		if !ok {
			return
		}
		ans := Answer(s, c, Local{Addr: netip.MustParseAddrPort("127.0.0.1:4000")})
		if _, err := Parse(ans); err != nil {
			t.Fatalf("answer to %q does not parse: %v\n%s", b, err, ans)
		}
	})
}

// TestOfferAndAnswerText: what callpark writes, byte for byte.
func TestOfferAndAnswerText(t *testing.T) {
	key := &Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", Key: "abcd"}
	if got, want := string(Offer(Local{Addr: netip.MustParseAddrPort("[2001:db8::5]:4000"), Session: 1, Version: 2, Crypto: key})),
		"v=0\r\no=callpark 1 2 IN IP6 2001:db8::5\r\ns=callpark\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\n"+
			"m=audio 4000 RTP/SAVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"+
			"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"+
			"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abcd\r\n"; got != want {
		t.Errorf("offer:\n%q\nwant\n%q", got, want)
	}
	offer, _ := Parse([]byte(linphoneOffer))
	c, _ := offer.AudioMedia().Negotiate()
	c.PT, c.Ulaw, c.DTMF = PCMA, false, 96
	if got, want := string(Answer(offer, c, Local{Addr: netip.MustParseAddrPort("192.0.2.9:30000"), Session: 18446744073709551615, Version: 8})),
		"v=0\r\no=callpark 18446744073709551615 8 IN IP4 192.0.2.9\r\ns=callpark\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"+
			"m=audio 30000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n"+
			"a=ptime:20\r\na=sendrecv\r\nm=video 0 RTP/AVP 96\r\n"; got != want {
		t.Errorf("answer:\n%q\nwant\n%q", got, want)
	}
}
