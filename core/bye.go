package core

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"
)

// byeTimeout bounds the wait for the answer to a BYE we send.
const byeTimeout = 5 * time.Second

// bye ends an answered leg's dialog with BYE and returns the BYE's
// outcome. Whatever it is, the dialog is over: RFC 3261 15.1.1 ends the
// session when the BYE is sent, and the dialog when it gets no answer, a
// 408 or a 481; the leg's media and dialog go with finish, whatever the
// phone answers (a phone that went away mid-call leaves nothing behind).
func (c *Core) bye(ch *channel) error {
	ch.mu.Lock()
	d := ch.dlg
	ch.mu.Unlock()
	return c.byeDialog(d)
}

// byeDialog sends BYE on d and waits (bounded) for its answer.
func (c *Core) byeDialog(d *dialog) error {
	if d == nil {
		return errNoDialog
	}
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	res, err := c.do(ctx, d, d.request(sip.BYE))
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return fmt.Errorf("bye: %s", res.StartLine())
	}
	return nil
}
