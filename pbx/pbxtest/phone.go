package pbxtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/audio"
)

// Phone is a SIP phone registered to the PBX.
type Phone struct {
	Ext, Domain, Password, Customer string
	Port                            int
	// Codecs the phone offers and accepts; nil means PCMU, PCMA and
	// telephone-event. Set it with PhoneWithCodecs.
	Codecs []media.Codec
	// Display is the From display name of the calls the phone makes, such
	// as an override identity; "" sends none.
	Display string
	// Host is the loopback address the phone binds (default 127.0.0.1).
	Host string

	pbxAddr  string
	unplug   func()
	dg       *diago.Diago
	incoming chan *Call
	ctx      context.Context
}

// Phone starts a phone for customer's account ext and registers it.
func (p *PBX) Phone(t testing.TB, customer, ext string) *Phone {
	t.Helper()
	ph := p.NewPhone(t, customer, ext)
	if err := ph.Register(context.Background(), ph.Password, time.Hour); err != nil {
		t.Fatalf("register %s@%s: %v", ext, ph.Domain, err)
	}
	return ph
}

// PhoneWithCodecs starts and registers a phone that only speaks codecs.
func (p *PBX) PhoneWithCodecs(t testing.TB, customer, ext string, codecs ...media.Codec) *Phone {
	t.Helper()
	ph := p.newPhone(t, customer, ext, codecs)
	if err := ph.Register(context.Background(), ph.Password, time.Hour); err != nil {
		t.Fatalf("register %s@%s: %v", ext, ph.Domain, err)
	}
	return ph
}

func (ph *Phone) codecs() []media.Codec {
	if ph.Codecs != nil {
		return ph.Codecs
	}
	return []media.Codec{media.CodecAudioUlaw, media.CodecAudioAlaw, media.CodecTelephoneEvent8000}
}

// NewPhone starts a phone without registering it.
func (p *PBX) NewPhone(t testing.TB, customer, ext string) *Phone {
	t.Helper()
	return p.newPhone(t, customer, ext, nil)
}

// PhoneOn is Phone bound to another loopback address (127.0.0.0/8), so
// that it is a different host as far as the PBX can tell.
func (p *PBX) PhoneOn(t testing.TB, host, customer, ext string) *Phone {
	t.Helper()
	ph := p.newPhoneOn(t, host, customer, ext, nil)
	if err := ph.Register(t.Context(), ph.Password, time.Hour); err != nil {
		t.Fatalf("%s@%s registers from %s: %v", ext, customer, host, err)
	}
	return ph
}

func (p *PBX) newPhone(t testing.TB, customer, ext string, codecs []media.Codec) *Phone {
	t.Helper()
	return p.newPhoneOn(t, "", customer, ext, codecs)
}

func (p *PBX) newPhoneOn(t testing.TB, host, customer, ext string, codecs []media.Codec) *Phone {
	t.Helper()
	cust := p.Store().Current().Customer(customer)
	if cust == nil {
		t.Fatalf("no customer %q", customer)
	}
	ph := &Phone{Ext: ext, Domain: cust.Domain, Customer: customer, Codecs: codecs, Host: host, pbxAddr: p.Addr, incoming: make(chan *Call, 64)}
	if a := cust.Account(ext); a != nil {
		ph.Password = a.Password
	}
	ph.start(t)
	return ph
}

// NewRawPhone starts a SIP user agent that is not an account (a trunk, an
// intruder) on a free port.
func NewRawPhone(t testing.TB, pbxAddr, user, domain string) *Phone {
	return NewRawPhoneAt(t, pbxAddr, user, domain, 0)
}

// NewRawPhoneAt is NewRawPhone on a given local port (a trunk's address).
func NewRawPhoneAt(t testing.TB, pbxAddr, user, domain string, port int) *Phone {
	ph := &Phone{Ext: user, Domain: domain, Port: port, pbxAddr: pbxAddr, incoming: make(chan *Call, 64)}
	ph.start(t)
	return ph
}

func (ph *Phone) start(t testing.TB) {
	if ph.Port == 0 {
		ph.Port = FreePort(t)
	}
	if ph.Host == "" {
		ph.Host = "127.0.0.1"
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("pbxtest-"+ph.Ext), sipgo.WithUserAgentHostname(ph.Host))
	if err != nil {
		t.Fatal(err)
	}
	ph.dg = diago.NewDiago(ua,
		diago.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		diago.WithTransport(diago.Transport{Transport: "udp", BindHost: ph.Host, BindPort: ph.Port}),
		diago.WithMediaConfig(diago.MediaConfig{Codecs: ph.codecs()}))
	ctx, cancel := context.WithCancel(context.Background())
	ph.ctx = ctx
	var once sync.Once
	ph.unplug = func() {
		once.Do(func() {
			cancel()
			ua.Close()
		})
	}
	t.Cleanup(ph.unplug)
	err = ph.dg.ServeBackground(ctx, func(d *diago.DialogServerSession) {
		c := &Call{phone: ph, srv: d, ended: make(chan struct{}), invite: d.InviteRequest}
		select {
		case ph.incoming <- c:
		default:
			_ = d.Respond(sip.StatusBusyHere, "Busy Here", nil)
			return
		}
		select {
		case <-d.Context().Done():
		case <-c.ended:
		case <-ctx.Done():
		}
		c.markEnded()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Unplug takes the phone off the network without unregistering, as when
// its cable is pulled: whatever is sent to it from now on goes unanswered.
func (ph *Phone) Unplug() { ph.unplug() }

// Register sends REGISTER with the given password and expiry.
func (ph *Phone) Register(ctx context.Context, password string, expiry time.Duration) error {
	var err error
	for range 5 {
		err = ph.register(ctx, password, expiry)
		// sipgo's client sometimes misses the listener that ServeBackground
		// just opened and tries to bind the port again: retry that.
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func (ph *Phone) register(ctx context.Context, password string, expiry time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tx, err := ph.dg.RegisterTransaction(ctx, sip.Uri{User: ph.Ext, Host: ph.Domain}, diago.RegisterOptions{
		Username: ph.Ext, Password: password, ProxyHost: ph.pbxAddr, Expiry: expiry,
	})
	if err != nil {
		return err
	}
	return tx.Register(ctx)
}

// Dial calls number at the PBX and waits for the answer.
func (ph *Phone) Dial(t testing.TB, number string) *Call {
	t.Helper()
	c, err := ph.DialErr(context.Background(), number)
	if err != nil {
		t.Fatalf("%s dials %s: %v", ph.Ext, number, err)
	}
	return c
}

// DialErr calls number and returns the SIP failure, if any, as
// *sipgo.ErrDialogResponse.
func (ph *Phone) DialErr(ctx context.Context, number string) (*Call, error) {
	return ph.DialWith(ctx, number, nil)
}

// DialWith is DialErr with a callback per response (to see 180, 183).
func (ph *Phone) DialWith(ctx context.Context, number string, onResponse func(*sip.Response)) (*Call, error) {
	d, err := ph.dg.NewDialog(sip.Uri{User: number, Host: ph.Domain}, diago.NewDialogOptions{})
	if err != nil {
		return nil, err
	}
	d.InviteRequest.SetDestination(ph.pbxAddr)
	opts := diago.InviteClientOptions{Username: ph.Ext, Password: ph.Password}
	if onResponse != nil {
		opts.OnResponse = func(res *sip.Response) error { onResponse(res); return nil }
	}
	opts.WithCaller(ph.Display, ph.Ext, ph.Domain)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	med, err := d.Invite(ctx, opts)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	if err := d.Ack(ctx); err != nil {
		return nil, err
	}
	c := &Call{phone: ph, cli: d, ended: make(chan struct{}), invite: d.InviteRequest}
	c.started(med)
	go func() {
		select {
		case <-d.Context().Done():
		case <-ph.ctx.Done():
		}
		c.markEnded()
	}()
	return c, nil
}

// Ringing waits for an incoming call without answering it.
func (ph *Phone) Ringing(t testing.TB, within time.Duration) *Call {
	t.Helper()
	select {
	case c := <-ph.incoming:
		_ = c.srv.Ringing()
		return c
	case <-time.After(within):
		t.Fatalf("%s: no incoming call within %s", ph.Ext, within)
		return nil
	}
}

// Answer waits for an incoming call and answers it.
func (ph *Phone) Answer(t testing.TB, within time.Duration) *Call {
	t.Helper()
	c := ph.Ringing(t, within)
	c.Answer(t)
	return c
}

// NoCall asserts that no call rings within d.
func (ph *Phone) NoCall(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case c := <-ph.incoming:
		t.Fatalf("%s: unexpected call from %s", ph.Ext, c.invite.From().Value())
	case <-time.After(d):
	}
}

// Call is one call on a phone.
type Call struct {
	phone  *Phone
	srv    *diago.DialogServerSession
	cli    *diago.DialogClientSession
	invite *sip.Request

	med *diago.DialogMedia

	mu        sync.Mutex
	pcm       []int16 // everything received, decoded
	packets   int
	firstPkt  time.Time
	lastPkt   time.Time
	maxGap    time.Duration
	toneStop  chan struct{}
	digits    []rune
	toneDone  chan struct{}
	ended     chan struct{}
	endedOnce sync.Once
}

// Invite is the INVITE that started the call (headers such as Alert-Info).
func (c *Call) Invite() *sip.Request { return c.invite }

// Answer answers an incoming call.
func (c *Call) Answer(t testing.TB) {
	t.Helper()
	med, err := c.srv.Answer(diago.AnswerOptions{})
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	c.started(med)
}

// Reject answers an incoming call with a failure code.
func (c *Call) Reject(code int, reason string) error {
	err := c.srv.Respond(code, reason, nil)
	c.markEnded()
	return err
}

func (c *Call) started(med *diago.DialogMedia) {
	c.med = med
	go c.readLoop()
}

func (c *Call) codec() media.Codec {
	return media.CodecAudioFromSession(c.med.MediaSession())
}

func (c *Call) readLoop() {
	r := c.med.RTPPacketReader
	buf := make([]byte, 1500)
	var pcm []int16
	lastDigitTS, lastDigit := uint32(1<<32-1), byte(255)
	for {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		pt := r.PacketHeader.PayloadType
		if te, ok := c.dtmfPT(); ok && pt == te {
			// RFC 4733: note each event once, on its first end packet.
			if n >= 4 && buf[1]&0x80 != 0 && (r.PacketHeader.Timestamp != lastDigitTS || buf[0] != lastDigit) {
				lastDigitTS, lastDigit = r.PacketHeader.Timestamp, buf[0]
				c.mu.Lock()
				c.digits = append(c.digits, audio.DTMFDigit(buf[0]))
				c.mu.Unlock()
			}
			continue
		}
		switch pt {
		case 0:
			pcm = audio.DecodeUlaw(buf[:n], pcm[:0])
		case 8:
			pcm = audio.DecodeAlaw(buf[:n], pcm[:0])
		default:
			continue
		}
		now := time.Now()
		c.mu.Lock()
		if c.packets == 0 {
			c.firstPkt = now
		}
		if c.packets > 0 {
			if gap := now.Sub(c.lastPkt); gap > c.maxGap {
				c.maxGap = gap
			}
		}
		c.packets++
		c.lastPkt = now
		c.pcm = append(c.pcm, pcm...)
		c.mu.Unlock()
	}
}

func (c *Call) dtmfPT() (uint8, bool) {
	sess := c.med.MediaSession()
	if sess == nil {
		return 0, false
	}
	for _, cd := range sess.CommonCodecs() {
		if cd.Name == media.CodecTelephoneEvent8000.Name {
			return cd.PayloadTypeRecv(), true
		}
	}
	return 0, false
}

// SendDTMF sends digits as RFC 4733 telephone-events.
func (c *Call) SendDTMF(t testing.TB, digits string) {
	t.Helper()
	c.StopTone()
	w, err := c.med.AudioWriterDTMF()
	if err != nil {
		t.Fatalf("dtmf writer: %v", err)
	}
	// Like a phone, keep sending (silent) audio between digits, so each
	// event starts at a later RTP timestamp.
	silence := make([]byte, 160)
	for i := range silence {
		silence[i] = 0xFF
		if c.codec().Name == "pcma" {
			silence[i] = 0xD5
		}
	}
	for _, d := range digits {
		for range 3 {
			if _, err := c.med.RTPPacketWriter.Write(silence); err != nil {
				t.Fatalf("audio: %v", err)
			}
		}
		if err := w.WriteDTMF(d); err != nil {
			t.Fatalf("dtmf %c: %v", d, err)
		}
	}
}

// ExpectDTMF waits until digits arrived as telephone-events.
func (c *Call) ExpectDTMF(t testing.TB, digits string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		got := string(c.digits)
		c.mu.Unlock()
		if got == digits {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: DTMF %q received, want %q", c.phone.Ext, got, digits)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Received returns how many audio packets arrived and the samples.
func (c *Call) Received() (packets int, pcm []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets, append([]int16(nil), c.pcm...)
}

// ResetGap starts measuring the longest pause between audio packets.
func (c *Call) ResetGap() {
	c.mu.Lock()
	c.maxGap = 0
	c.mu.Unlock()
}

// MaxGap is the longest pause between two audio packets since ResetGap.
func (c *Call) MaxGap() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxGap
}

// AudioUntilEnd waits for the call to end and returns how many audio
// packets arrived and for how long (first to last packet).
func (c *Call) AudioUntilEnd(t testing.TB, within time.Duration) (int, time.Duration) {
	t.Helper()
	c.ExpectEnded(t, within)
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.packets == 0 {
		return 0, 0
	}
	return c.packets, c.lastPkt.Sub(c.firstPkt)
}

// Mark returns the number of samples received so far, to look only at
// what comes after.
func (c *Call) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pcm)
}

// PacketsSince counts audio packets received during d from now on.
func (c *Call) PacketsDuring(d time.Duration) int {
	c.mu.Lock()
	start := c.packets
	c.mu.Unlock()
	time.Sleep(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets - start
}

// SendTone sends a continuous tone of freq Hz until StopTone or the end of
// the call, paced at 20 ms like a phone.
func (c *Call) SendTone(freq float64) {
	c.StopTone()
	stop := make(chan struct{})
	done := make(chan struct{})
	c.mu.Lock()
	c.toneStop, c.toneDone = stop, done
	c.mu.Unlock()
	tone := audio.Tone(freq, time.Second, 0.5)
	ulaw := c.codec().Name == "pcmu"
	var enc []byte
	if ulaw {
		enc = audio.EncodeUlaw(tone, nil)
	} else {
		enc = audio.EncodeAlaw(tone, nil)
	}
	w := c.med.RTPPacketWriter
	go func() {
		defer close(done)
		for off := 0; ; off = (off + 160) % len(enc) {
			select {
			case <-stop:
				return
			case <-c.ended:
				return
			default:
			}
			if _, err := w.Write(enc[off : off+160]); err != nil {
				return
			}
		}
	}()
}

// StopTone stops SendTone and waits until its sender is gone.
func (c *Call) StopTone() {
	c.mu.Lock()
	stop, done := c.toneStop, c.toneDone
	c.toneStop, c.toneDone = nil, nil
	c.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// ExpectTone waits until the last 200 ms received hold freq as the
// dominant tone.
func (c *Call) ExpectTone(t testing.TB, freq float64, within time.Duration) {
	t.Helper()
	if err := c.WaitTone(freq, within); err != nil {
		t.Fatalf("%s: %v", c.phone.Ext, err)
	}
}

// WaitTone is ExpectTone returning an error.
func (c *Call) WaitTone(freq float64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		var win []int16
		if len(c.pcm) >= 1600 {
			win = append(win, c.pcm[len(c.pcm)-1600:]...)
		}
		c.mu.Unlock()
		if win != nil {
			if f, ok := audio.DominantTone(win, freq, 440, 697, 1000, 1400, 2000); ok && f == freq {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("tone %.0f Hz not heard within %s", freq, within)
}

// ExpectAudio asserts that non-silent audio arrives at about 50 packets/s
// over d (music on hold, a prompt).
func (c *Call) ExpectAudio(t testing.TB, d time.Duration) {
	t.Helper()
	mark := c.Mark()
	n := c.PacketsDuring(d)
	want := int(d / (20 * time.Millisecond))
	if n < want*8/10 {
		t.Fatalf("%s: %d packets in %s, want about %d", c.phone.Ext, n, d, want)
	}
	_, pcm := c.Received()
	if audio.IsSilent(pcm[mark:]) {
		t.Fatalf("%s: received audio is silent (rms %.0f)", c.phone.Ext, audio.RMS(pcm[mark:]))
	}
}

// Hold puts the call on hold (re-INVITE a=sendonly).
func (c *Call) Hold(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if c.cli != nil {
		err = c.cli.Hold(ctx)
	} else {
		err = c.srv.Hold(ctx)
	}
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
}

// Unhold resumes the call (re-INVITE a=sendrecv).
func (c *Call) Unhold(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if c.cli != nil {
		err = c.cli.Unhold(ctx)
	} else {
		err = c.srv.Unhold(ctx)
	}
	if err != nil {
		t.Fatalf("unhold: %v", err)
	}
}

// Transfer sends a blind transfer (REFER) to number and returns the final
// status carried by the NOTIFY sipfrag.
func (c *Call) Transfer(t testing.TB, number string) int {
	t.Helper()
	final := make(chan int, 4)
	onNotify := func(code int) {
		if code >= 200 {
			select {
			case final <- code:
			default:
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	uri := sip.Uri{User: number, Host: c.phone.Domain}
	var err error
	if c.cli != nil {
		err = c.cli.ReferOptions(ctx, uri, diago.ReferClientOptions{OnNotify: onNotify})
	} else {
		err = c.srv.ReferOptions(ctx, uri, diago.ReferServerOptions{OnNotify: onNotify})
	}
	if err != nil {
		t.Fatalf("refer %s: %v", number, err)
	}
	select {
	case code := <-final:
		return code
	case <-time.After(5 * time.Second):
		t.Fatalf("refer %s: no final NOTIFY", number)
		return 0
	}
}

// Hangup ends the call.
func (c *Call) Hangup() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.cli != nil {
		_ = c.cli.Hangup(ctx)
	} else {
		_ = c.srv.Hangup(ctx)
	}
	c.markEnded()
}

// Ended is closed when the call is over (either side).
func (c *Call) Ended() <-chan struct{} { return c.ended }

// ExpectEnded waits for the far end to hang up.
func (c *Call) ExpectEnded(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-c.ended:
	case <-time.After(within):
		t.Fatalf("%s: call not ended within %s", c.phone.Ext, within)
	}
}

func (c *Call) markEnded() {
	c.endedOnce.Do(func() { close(c.ended) })
}

// StatusOf returns the SIP status of a failed dial, or 0.
func StatusOf(err error) int {
	var pe *sipgo.ErrDialogResponse
	if errors.As(err, &pe) && pe.Res != nil {
		return pe.Res.StatusCode
	}
	return 0
}

// Dialog returns what identifies the call's SIP dialog on the phone's side:
// the Call-ID, the phone's own tag and the PBX's tag. Forgery tests use it
// to send requests that match the dialog from somewhere else.
func (c *Call) Dialog() (callID, localTag, remoteTag string) {
	var req *sip.Request
	var res *sip.Response
	switch {
	case c.cli != nil:
		req, res = c.cli.InviteRequest, c.cli.InviteResponse
		callID = req.CallID().Value()
		localTag, _ = req.From().Params.Get("tag")
		if res != nil {
			remoteTag, _ = res.To().Params.Get("tag")
		}
	case c.srv != nil:
		req, res = c.srv.InviteRequest, c.srv.InviteResponse
		callID = req.CallID().Value()
		remoteTag, _ = req.From().Params.Get("tag")
		if res != nil {
			localTag, _ = res.To().Params.Get("tag")
		}
	}
	return callID, localTag, remoteTag
}
