package core

import (
	"context"
	"time"

	"github.com/emiago/diago"
)

// byeTimeout bounds the wait for the answer to a BYE we send.
const byeTimeout = 5 * time.Second

// bye ends an answered outbound dialog with BYE and returns the BYE's
// outcome. Whatever it is, the dialog is over: RFC 3261 15.1.1 ends the
// session when the BYE is sent, and the dialog when it gets no answer, a
// 408 or a 481. sipgo ends a client dialog only on the BYE's 200, and diago
// closes the dialog's media and forgets it only then: a phone that went
// away mid-call kept both (an RTP socket pair, its reader goroutines, the
// dialog's messages) for good. So on any other outcome the core closes
// them itself.
func (c *Core) bye(d *diago.DialogClientSession) error {
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	err := d.Hangup(ctx)
	if err != nil {
		_ = d.Close() // the media
		_ = c.dg.DialogCacheClient().DialogDelete(context.Background(), d.ID)
	}
	return err
}
