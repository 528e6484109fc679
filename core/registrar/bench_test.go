package registrar

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// nopTx drops responses.
type nopTx struct{ *fakeTx }

func (nopTx) Respond(*sip.Response) error { return nil }

// BenchmarkRegister measures one authenticated re-REGISTER in process:
// parsing the credentials, checking nonce and digest, the nc replay check,
// updating the binding and building the 200 OK. The phone side (computing
// each digest) is done outside the timer.
func BenchmarkRegister(b *testing.B) {
	r := New(func() Directory { return testAccounts }, Options{Log: testLogger(), NonceTTL: 1 << 62})
	base := inproc(sip.REGISTER, "200", sip.NewHeader("Contact", "<sip:200@192.0.2.10:5060;transport=udp>"),
		sip.NewHeader("Expires", "3600"))
	tx := &fakeTx{}
	r.HandleRegister(base, tx)
	nonce := challengeOf(b, tx.last())["nonce"]
	uri := base.Recipient.Addr()

	const batch = 1024
	reqs := make([]*sip.Request, 0, batch)
	var nc uint32
	refill := func() {
		reqs = reqs[:0]
		for range batch {
			nc++
			req := base.Clone()
			req.AppendHeader(sip.NewHeader("Authorization", digestAnswer("200", testDomain, "secret200", "REGISTER", uri, nonce, nc, "bench")))
			req.CSeq().SeqNo = nc + 1
			reqs = append(reqs, req)
		}
	}
	sink := nopTx{&fakeTx{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		r.HandleRegister(reqs[i%batch], sink)
	}
	b.StopTimer()
	if r.Count() != 1 {
		b.Fatalf("Count %d", r.Count())
	}
	if got := r.Contacts("acme", "200"); len(got) != 1 || got[0].CSeq < uint32(b.N) {
		b.Fatalf("binding %+v after %d REGISTERs", got, b.N)
	}
}

func BenchmarkParseAuthorization(b *testing.B) {
	v := digestAnswer("200", testDomain, "secret200", "REGISTER", "sip:pbx.test", "GIbK9Kw84ACuQ1dvXQB89tUJvA1a-zOuSFGlw5jr8Is", 1, "0a4f113b")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseAuthorization(v); err != nil {
			b.Fatal(err)
		}
	}
}
