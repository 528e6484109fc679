package core

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func inviteWith(body, ctype string) *sip.Request {
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "201", Host: "demo.callpark.test"})
	if ctype != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	}
	req.SetBody([]byte(body))
	return req
}

const goodOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"

func TestCheckOffer(t *testing.T) {
	for _, tc := range []struct {
		name, body, ctype string
		code              int
	}{
		{"good", goodOffer, "application/sdp", 0},
		{"no body", "", "", 488},
		{"text", "hello", "text/plain", 415},
		{"garbage", "garbage", "application/sdp", 400},
		{"no audio", "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 96\r\n", "application/sdp", 488},
		{"g729 only", "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18\r\n", "application/sdp", 488},
	} {
		if _, code, _ := checkOffer(inviteWith(tc.body, tc.ctype)); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
	}
}

func TestOfferHolds(t *testing.T) {
	for body, want := range map[string]bool{
		goodOffer: false,
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n": true,
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n": true,
		"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n":                 true,
		"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\n": false,
	} {
		if got, ok := offerHolds([]byte(body)); !ok || got != want {
			t.Errorf("offerHolds(%q) = %v, %v; want %v", body, got, ok, want)
		}
	}
}

// FuzzOffer: the SDP checks run on every INVITE from the network and must
// never panic.
func FuzzOffer(f *testing.F) {
	f.Add([]byte(goodOffer), "application/sdp")
	f.Add([]byte("v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 1 RTP/AVP 0\r\na=inactive\r\n"), "application/sdp")
	f.Add([]byte("m=audio x"), "application/sdp;charset=x")
	f.Add([]byte("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA\r\n"), "application/sdp")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		if s, code, _ := checkOffer(inviteWith(string(body), ctype)); code == 0 {
			offerSRTP(s)
		}
		offerHolds(body)
	})
}
