package core

import (
	"errors"
	"math/rand/v2"
	"net/netip"

	"github.com/callpark/callpark/core/rtp"
	"github.com/callpark/callpark/core/sdp"
)

// A leg's media: its RTP endpoint (package rtp) and the SDP offer/answer
// (package sdp) that says where its packets go and how. An inbound leg
// answers the phone's offer (and each re-INVITE's); an outbound leg
// offers, the phone answers. Only one audio stream is taken: G.711 (PCMU
// or PCMA, whichever the offerer lists first) with RFC 4733 telephone
// events; every other stream of an offer is refused with port 0.

// legMedia is a leg's side of the offer/answer, guarded by channel.mu.
type legMedia struct {
	// session and version fill the o= line of our descriptions.
	session, version uint64
	// crypto is our SDES key line (SRTP legs), peerKey the far end's.
	crypto  *sdp.Crypto
	peerKey string
}

var (
	errNoAudio = errors.New("no G.711 audio stream")
	errNoKey   = errors.New("no usable SRTP key")
)

// openMedia gives the leg its RTP endpoint.
func (ch *channel) openMedia() error {
	conn, err := ch.core.media.Open(ch)
	if err != nil {
		return err
	}
	ch.mu.Lock()
	ch.sdp.session = uint64(rand.Uint32())
	ch.sdp.version = ch.sdp.session
	ch.mu.Unlock()
	ch.out.attach(conn)
	return nil
}

// closeMedia ends the leg's RTP.
func (ch *channel) closeMedia() {
	if conn := ch.out.connection(); conn != nil {
		_ = conn.Close()
	}
}

// local describes our end for a new description (its version raised).
func (ch *channel) localLocked(conn *rtp.Conn) sdp.Local {
	ch.sdp.version++
	return sdp.Local{Addr: conn.Local(), Session: ch.sdp.session, Version: ch.sdp.version, Crypto: ch.sdp.crypto}
}

// answerOffer applies a phone's offer (an INVITE's or a re-INVITE's) and
// returns our answer. An SRTP offer is answered with SRTP (the caller has
// checked the transport), with the first key whose suite we know.
func (ch *channel) answerOffer(offer *sdp.Session) ([]byte, error) {
	conn := ch.out.connection()
	if conn == nil {
		return nil, errEnded
	}
	m := offer.AudioMedia()
	if m == nil {
		return nil, errNoAudio
	}
	codec, ok := m.Negotiate()
	if !ok {
		return nil, errNoAudio
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if m.Proto == sdp.ProfileSRTP {
		if err := ch.secureAnswerLocked(conn, m); err != nil {
			return nil, err
		}
	} else if ch.sdp.crypto != nil {
		return nil, errNoKey // a secure leg stays secure
	}
	conn.SetRemote(netip.AddrPortFrom(m.Addr, uint16(m.Port)))
	ch.out.setCodec(codec)
	return sdp.Answer(offer, codec, ch.localLocked(conn)), nil
}

// secureAnswerLocked keys the leg from an SRTP offer: their first usable
// key decrypts what they send; ours (kept across re-INVITEs, so that the
// stream's SRTP state carries on) encrypts what we send.
func (ch *channel) secureAnswerLocked(conn *rtp.Conn, m *sdp.Media) error {
	for _, cr := range m.Crypto {
		if !rtp.SupportedSuite(cr.Suite) {
			continue
		}
		if ch.sdp.crypto != nil && ch.sdp.crypto.Suite == cr.Suite && ch.sdp.peerKey == cr.Key {
			ch.sdp.crypto.Tag = cr.Tag
			return nil // the same keys: nothing changes
		}
		in, err := rtp.NewContext(cr.Suite, cr.Key)
		if err != nil {
			continue
		}
		mine := ch.sdp.crypto
		if mine == nil || mine.Suite != cr.Suite {
			key, err := rtp.NewKey(cr.Suite)
			if err != nil {
				return err
			}
			mine = &sdp.Crypto{Suite: cr.Suite, Key: key}
		}
		out, err := rtp.NewContext(mine.Suite, mine.Key)
		if err != nil {
			return err
		}
		mine = &sdp.Crypto{Tag: cr.Tag, Suite: mine.Suite, Key: mine.Key}
		conn.Secure(out, in)
		ch.sdp.crypto, ch.sdp.peerKey = mine, cr.Key
		return nil
	}
	return errNoKey
}

// offer is our offer for an outbound leg: SRTP when secure (a phone
// reached over TLS).
func (ch *channel) offer(secure bool) ([]byte, error) {
	conn := ch.out.connection()
	if conn == nil {
		return nil, errEnded
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if secure && ch.sdp.crypto == nil {
		key, err := rtp.NewKey(rtp.DefaultSuite)
		if err != nil {
			return nil, err
		}
		ch.sdp.crypto = &sdp.Crypto{Tag: 1, Suite: rtp.DefaultSuite, Key: key}
	}
	return sdp.Offer(ch.localLocked(conn)), nil
}

// takeAnswer applies the phone's answer to our offer.
func (ch *channel) takeAnswer(ans *sdp.Session) error {
	conn := ch.out.connection()
	if conn == nil {
		return errEnded
	}
	m := ans.AudioMedia()
	if m == nil {
		return errNoAudio
	}
	codec, ok := m.Negotiate()
	if !ok {
		return errNoAudio
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if mine := ch.sdp.crypto; mine != nil {
		var key string
		for _, cr := range m.Crypto {
			if cr.Suite == mine.Suite {
				key = cr.Key
				break
			}
		}
		if key == "" || m.Proto != sdp.ProfileSRTP {
			return errNoKey
		}
		in, err := rtp.NewContext(mine.Suite, key)
		if err != nil {
			return err
		}
		out, err := rtp.NewContext(mine.Suite, mine.Key)
		if err != nil {
			return err
		}
		conn.Secure(out, in)
		ch.sdp.peerKey = key
	}
	conn.SetRemote(netip.AddrPortFrom(m.Addr, uint16(m.Port)))
	ch.out.setCodec(codec)
	return nil
}
