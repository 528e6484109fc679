package rtp

import (
	"errors"

	"golang.org/x/sys/unix"
)

// A leg on music on hold is deaf: the kernel drops its phone's audio.
//
// Phones keep sending 50 packets a second while parked (the caller did not
// put anyone on hold: the receptionist did), and nobody listens to a
// parked caller. Read, each packet would cost a poller wake-up and a read
// for nothing: at 5,000 parked calls, 250,000 of them a second. So while a
// leg plays music a socket filter (classic BPF, SO_ATTACH_FILTER) on its
// RTP socket drops every packet but its RFC 4733 telephone events before
// they are queued: digits pressed while parked are still read. The filter
// goes when the music stops, before the leg's audio is bridged again.
//
// The kernel counts what a filter drops as UDP receive errors (InErrors,
// and the socket's drops in /proc/net/udp): 50 a second per parked call.

// SetDeaf installs (on) or removes the deaf filter; keepPT is the payload
// type still read (telephone-event), or -1 for none. It does nothing when
// the filter in place is already that one.
func (c *Conn) SetDeaf(on bool, keepPT int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if on == c.deaf && (!on || keepPT == c.deafPT) {
		return nil
	}
	var err error
	if on {
		err = c.e.progs.attachDeaf(c.fd, keepPT)
	} else {
		err = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if errors.Is(err, unix.ENOENT) {
			err = nil // there was none
		}
	}
	if err != nil {
		return err
	}
	c.deaf, c.deafPT = on, keepPT
	return nil
}

// Deaf reports whether the deaf filter is in place.
func (c *Conn) Deaf() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deaf
}

// dropAll is the filter of a socket nobody reads (RTCP).
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// deafProgram keeps RTP packets of payload type keepPT and drops the rest;
// keepPT < 0 drops everything. A UDP socket's filter sees the datagram
// from its UDP header on, so the RTP header's marker and payload type byte
// is at offset 8+1; a datagram too short to have one is dropped.
func deafProgram(keepPT int) []unix.SockFilter {
	const keep = 0x40000 // bytes of the packet kept: all of it
	if keepPT < 0 || keepPT > 127 {
		return dropAll
	}
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 8 + 1},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x7f},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(keepPT)},
		{Code: unix.BPF_RET | unix.BPF_K, K: keep},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
}

func attachFilter(fd int, prog []unix.SockFilter) error {
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}
