package core

import (
	"crypto/tls"
	"strings"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media/sdp"
	"github.com/emiago/sipgo/sip"
)

// SIP over TLS and SRTP. The TLS listener (Config.TLS, Config.TLSPort)
// carries its calls' media as SRTP with SDES keys (RFC 4568): a phone that
// offers RTP/SAVP with a=crypto over TLS gets an encrypted answer, and the
// core's own offers to phones registered over TLS are RTP/SAVP. Keys sent
// in SDP over plain UDP or TCP protect nothing, so an SRTP offer there is
// refused (488) rather than answered with keys anyone on the path can
// read. Music, prompts and bridges need nothing of their own: a secure
// leg's packets go through its SRTP session (sender.go skips the raw and
// batched paths for it), and a bridge between an SRTP phone and a plain
// trunk decrypts on one leg and encrypts on the other.
//
// An account whose policy is "required" (Directory.SRTPRequired) makes
// and takes calls only that way: a plain offer from it gets 488, and only
// its TLS contacts are rung.

// tlsTransport is diago's TLS transport for cfg: TLS 1.2 or newer, SRTP
// (SDES) offered and accepted.
func tlsTransport(cfg Config) diago.Transport {
	conf := cfg.TLS.Clone()
	if conf.MinVersion < tls.VersionTLS12 {
		conf.MinVersion = tls.VersionTLS12
	}
	// RewriteContact: in-dialog requests (BYE, re-INVITE, UPDATE) go back
	// over the connection the phone opened, as RFC 5923 reuse and every
	// NATed TLS phone need; a phone's own listener, if any, is never dialed.
	// TLSURINoSIPS: our Contact is sip:…;transport=tls, not sips: (RFC
	// 5630 3.3 allows it): phones such as baresip 1.0 cannot route to a
	// sips: Contact and drop the call at the 200 OK. sips: URIs from phones
	// are still taken (registrar, contactTransport).
	return diago.Transport{Transport: "tls", BindHost: cfg.Host, BindPort: cfg.TLSPort, TLSConf: conf, MediaSRTP: 1,
		RewriteContact: true, TLSURINoSIPS: true}
}

// secureTransport reports whether a request came over TLS.
func secureTransport(req *sip.Request) bool {
	tr := strings.ToLower(req.Transport())
	return tr == "tls" || tr == "wss"
}

// offerSRTP reports whether an SDP offer's audio stream asks for SRTP with
// SDES keys (RTP/SAVP and at least one a=crypto line).
func offerSRTP(body []byte) bool {
	sd := sdp.SessionDescription{}
	if err := sdp.Unmarshal(body, &sd); err != nil {
		return false
	}
	md, err := sd.MediaDescription("audio")
	if err != nil || md.Proto != "RTP/SAVP" {
		return false
	}
	for _, v := range sd.Values("a") {
		if strings.HasPrefix(v, "crypto:") {
			return true
		}
	}
	return false
}

// checkSRTP applies the media encryption rules to a new INVITE from
// customer's account (account "" for trunks and internal legs).
func (c *Core) checkSRTP(req *sip.Request, customer, account string) (code int, reason string) {
	secure := offerSRTP(req.Body())
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
