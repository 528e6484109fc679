package sip

// callpark patch 8 (see ../README.md): a non-INVITE server transaction
// that has sent its final response over UDP is kept as the bytes of that
// response. In "Completed" (RFC 3261 17.2.2) it does nothing but resend
// them to a retransmission of its request, until Timer J (64·T1, 32 s);
// the whole transaction (its state machine, channels, timer and parsed
// response, pointers the collector walks at every cycle) stayed alive for
// it. Three such transactions a park+retrieve cycle (the REFER and two
// BYEs), 96,000 alive at 1,000 cycles/s: half of callparkd's peak memory.
// What a retransmission needs is the key, the method, the response's
// bytes and where to send them; every record expires Timer J after it was
// made, so records expire in the order they were made, and one queue and
// one timer serve them all.

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"time"
)

// completedTx is what is left of a completed non-INVITE server
// transaction over UDP: 112 bytes and the response's (96,000 records at
// 1,000 cycles/s).
type completedTx struct {
	key     string
	method  RequestMethod
	resp    []byte
	conn    *UDPConnection
	addr    netip.AddrPort
	expires time.Duration // since completedTxs.epoch (monotonic)
}

// completedTxs holds the completed transactions until their Timer J.
type completedTxs struct {
	epoch time.Time
	mu    sync.Mutex
	items map[string]*completedTx
	queue []*completedTx // by expiry, the first to expire first
	timer *time.Timer    // set while queue is not empty
}

func newCompletedTxs() *completedTxs {
	c := &completedTxs{epoch: time.Now(), items: make(map[string]*completedTx)}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	return c
}

// keep records tx's final response res, already sent on conn, for
// retransmissions of its request until ttl from now. It reports false
// (nothing kept) for a response it cannot resend as is.
func (c *completedTxs) keep(tx *ServerTx, conn *UDPConnection, res *Response, ttl time.Duration) bool {
	a := res.remoteAddress()
	if a.IP == nil {
		host, port, err := ParseAddr(res.Destination())
		if err != nil {
			return false
		}
		a.IP, a.Port = net.ParseIP(host), port
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return false
	}
	if a.Port == 0 {
		a.Port = DefaultUdpPort
	}
	ip = ip.Unmap().WithZone(a.Zone)
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	res.StringWrite(buf)
	e := &completedTx{
		key:     tx.key,
		method:  tx.method,
		resp:    bytes.Clone(buf.Bytes()),
		conn:    conn,
		addr:    netip.AddrPortFrom(ip, uint16(a.Port)),
		expires: time.Since(c.epoch) + ttl,
	}
	bufPool.Put(buf)
	conn.Ref(1) // as the transaction did, until its Timer J

	c.mu.Lock()
	c.items[e.key] = e
	c.queue = append(c.queue, e)
	if len(c.queue) == 1 {
		c.timer.Reset(ttl)
	}
	c.mu.Unlock()
	return true
}

// resend answers req with the response of the completed transaction key,
// and reports whether there is one. A request of another method under its
// key is dropped.
func (c *completedTxs) resend(key string, req *Request) bool {
	c.mu.Lock()
	e := c.items[key]
	c.mu.Unlock()
	if e == nil {
		return false
	}
	if req.Method == e.method {
		e.conn.WriteTo(e.resp, net.UDPAddrFromAddrPort(e.addr))
	}
	return true
}

// expire drops the records whose Timer J has fired and sets the timer
// for the next.
func (c *completedTxs) expire() {
	c.mu.Lock()
	now := time.Since(c.epoch)
	n := 0
	for n < len(c.queue) && c.queue[n].expires <= now {
		e := c.queue[n]
		if c.items[e.key] == e {
			delete(c.items, e.key)
		}
		n++
	}
	gone := c.queue[:n:n]
	c.queue = c.queue[n:]
	if len(c.items) == 0 {
		// A Go map keeps the room of its largest size (patch 2).
		c.items = make(map[string]*completedTx)
	}
	if len(c.queue) == 0 {
		c.queue = nil // a burst's array goes too
	} else {
		c.timer.Reset(c.queue[0].expires - now)
	}
	c.mu.Unlock()
	release(gone)
}

// close drops every record.
func (c *completedTxs) close() {
	c.mu.Lock()
	c.timer.Stop()
	gone := c.queue
	c.items = make(map[string]*completedTx)
	c.queue = nil
	c.mu.Unlock()
	release(gone)
}

// release lets go of the connections of records dropped, and of the
// records (their slots in the queue's array).
func release(gone []*completedTx) {
	for i, e := range gone {
		e.conn.TryClose()
		gone[i] = nil
	}
}
