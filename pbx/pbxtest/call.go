package pbxtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callpark/callpark/core/audio"
)

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

func (c *Call) Invite() *sip.Request { return c.invite }

func (c *Call) Answer(t testing.TB) {
	t.Helper()
	if err := c.AnswerErr(); err != nil {
		t.Fatalf("answer: %v", err)
	}
}

// AnswerErr answers, or says why it could not (the caller cancelled).
func (c *Call) AnswerErr() error {
	med, err := c.srv.Answer(diago.AnswerOptions{})
	if err != nil {
		return err
	}
	c.started(med)
	return nil
}

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

func (c *Call) Received() (packets int, pcm []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets, append([]int16(nil), c.pcm...)
}

func (c *Call) ResetGap() {
	c.mu.Lock()
	c.maxGap = 0
	c.mu.Unlock()
}

func (c *Call) MaxGap() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxGap
}

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

func (c *Call) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pcm)
}

func (c *Call) PacketsDuring(d time.Duration) int {
	c.mu.Lock()
	start := c.packets
	c.mu.Unlock()
	time.Sleep(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets - start
}

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

// Park blind-transfers the call to number, as a phone's Park key does
// (REFER to *70333), and fails the test unless the transfer succeeds:
// final NOTIFY 200.
func (c *Call) Park(t testing.TB, number string) {
	t.Helper()
	if code := c.Transfer(t, number); code != 200 {
		t.Fatalf("REFER to %s: final NOTIFY %d, want 200", number, code)
	}
}

// Transfer blind-transfers the call to number (REFER) and returns the
// final NOTIFY's status.
func (c *Call) Transfer(t testing.TB, number string) int {
	t.Helper()
	code, err := c.TransferErr(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TransferErr is Transfer for any goroutine: it returns the final NOTIFY's
// status, or an error.
func (c *Call) TransferErr(ctx context.Context, number string) (int, error) {
	final := make(chan int, 4)
	onNotify := func(code int) {
		if code >= 200 {
			select {
			case final <- code:
			default:
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	uri := sip.Uri{User: number, Host: c.phone.Domain}
	var err error
	if c.cli != nil {
		err = c.cli.ReferOptions(ctx, uri, diago.ReferClientOptions{OnNotify: onNotify})
	} else {
		err = c.srv.ReferOptions(ctx, uri, diago.ReferServerOptions{OnNotify: onNotify})
	}
	if err != nil {
		return 0, fmt.Errorf("refer %s: %w", number, err)
	}
	select {
	case code := <-final:
		return code, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("refer %s: no final NOTIFY", number)
	}
}

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

func (c *Call) Ended() <-chan struct{} { return c.ended }

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

func StatusOf(err error) int {
	var pe *sipgo.ErrDialogResponse
	if errors.As(err, &pe) && pe.Res != nil {
		return pe.Res.StatusCode
	}
	return 0
}

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

// WaitIdentity waits for an UPDATE in the call's dialog telling the phone
// who it talks to, and returns its P-Asserted-Identity.
func (c *Call) WaitIdentity(t testing.TB, within time.Duration) string {
	t.Helper()
	callID, _, _ := c.Dialog()
	deadline := time.Now().Add(within)
	for {
		c.phone.mu.Lock()
		for _, u := range c.phone.updates {
			if u.CallID() != nil && u.CallID().Value() == callID {
				if h := u.GetHeader("P-Asserted-Identity"); h != nil {
					c.phone.mu.Unlock()
					return h.Value()
				}
			}
		}
		c.phone.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%s: no identity UPDATE within %s", c.phone.Ext, within)
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RemoteSDP is the far end's session description: callpark's answer to
// the phone's INVITE, or the offer of an INVITE the phone received.
func (c *Call) RemoteSDP() string {
	switch {
	case c.cli != nil && c.cli.InviteResponse != nil:
		return string(c.cli.InviteResponse.Body())
	case c.srv != nil:
		return string(c.srv.InviteRequest.Body())
	}
	return ""
}
