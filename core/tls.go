package core

import (
	"crypto/tls"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/sdp"
)

// SIP over TLS and SRTP. The TLS listener (Config.TLS, Config.TLSPort)
// carries its calls' media as SRTP with SDES keys (RFC 4568): a phone that
// offers RTP/SAVP with a=crypto over TLS gets an encrypted answer, and the
// core's own offers to phones registered over TLS are RTP/SAVP. Keys sent
// in SDP over plain UDP or TCP protect nothing, so an SRTP offer there is
// refused (488) rather than answered with keys anyone on the path can
// read. Music, prompts and bridges need nothing of their own: a secure
// leg's packets are encrypted by its rtp.Conn (sender.go keeps it off the
// batched music path), and a bridge between an SRTP phone and a plain
// trunk decrypts on one leg and encrypts on the other.
//
// In-dialog requests to a TLS phone go back over the connection it opened
// (RFC 5923 reuse: dialog.dest is its source address), as every NATed TLS
// phone needs; our Contact is sip:…;transport=tls, not sips: (RFC 5630
// 3.3 allows it), as phones such as baresip 1.0 cannot route to a sips:
// Contact. sips: URIs from phones are still taken (registrar,
// contactTransport).
//
// An account whose policy is "required" (Directory.SRTPRequired) makes
// and takes calls only that way: a plain offer from it gets 488, and only
// its TLS contacts are rung.

// tlsConfig is the listener's configuration: TLS 1.2 or newer.
func tlsConfig(conf *tls.Config) *tls.Config {
	conf = conf.Clone()
	if conf.MinVersion < tls.VersionTLS12 {
		conf.MinVersion = tls.VersionTLS12
	}
	return conf
}

// secureTransport reports whether a request came over TLS.
func secureTransport(req *sip.Request) bool {
	tr := strings.ToLower(req.Transport())
	return tr == "tls" || tr == "wss"
}

// offerSRTP reports whether an SDP offer's audio stream asks for SRTP with
// SDES keys (RTP/SAVP and at least one a=crypto line).
func offerSRTP(s *sdp.Session) bool {
	m := s.AudioMedia()
	return m != nil && m.Proto == sdp.ProfileSRTP && len(m.Crypto) > 0
}

// checkSRTP applies the media encryption rules to a new INVITE from
// customer's account (account "" for trunks and internal legs).
func (c *Core) checkSRTP(req *sip.Request, offer *sdp.Session, customer, account string) (code int, reason string) {
	secure := offerSRTP(offer)
	switch {
	case secure && !secureTransport(req):
		return sip.StatusNotAcceptableHere, "SRTP Requires TLS"
	case !secure && account != "" && c.cfg.Directory.SRTPRequired(customer, account):
		return sip.StatusNotAcceptableHere, "SRTP Required"
	}
	return 0, ""
}

// contactTransport is the transport to reach a contact URI with: its
// transport parameter, or TLS for a sips: URI.
func contactTransport(u sip.Uri) string {
	if u.UriParams != nil {
		if tr, ok := u.UriParams.Get("transport"); ok && tr != "" {
			return strings.ToLower(tr)
		}
	}
	if strings.EqualFold(u.Scheme, "sips") {
		return "tls"
	}
	return ""
}
