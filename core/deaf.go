package core

import (
	"errors"
	"net"
	"reflect"
	"syscall"
	"unsafe"

	"github.com/emiago/diago/media"
	"golang.org/x/sys/unix"
)

// A leg on music on hold is deaf: the kernel drops its phone's audio.
//
// Phones keep sending 50 packets a second while parked (the caller did not
// put anyone on hold: the receptionist did), and nobody listens to a
// parked caller. Read, each packet costs the core a netpoll wake-up and a
// read system call, only for readLoop to find that the leg has no peer
// and throw it away: at 5,000 parked calls, 250,000 of them a second, as
// much as the music sent to them. So while a leg plays music a socket
// filter (classic BPF, SO_ATTACH_FILTER) on its RTP socket drops every
// packet but the leg's RFC 4733 telephone events, before they are queued:
// digits pressed while parked are still read and reported as call.dtmf.
// The filter goes when the music stops (a retrieval, a prompt, the end of
// a hold), before the leg's audio is bridged again.
//
// The kernel counts what a filter drops as UDP receive errors (InErrors,
// and the socket's drops in /proc/net/udp): 50 a second per parked call.
//
// diago keeps the socket unexported (media.MediaSession.rtpConn); it is
// found by reflection, checked against the field's type once. A diago
// whose MediaSession has no such field leaves legs hearing, as before, and
// TestParkedCallerIsNotRead fails, which is the signal to look again.

// rtpConnOffset is where a MediaSession keeps its RTP socket, or ok false.
var rtpConnOffset, rtpConnFound = func() (uintptr, bool) {
	f, ok := reflect.TypeFor[media.MediaSession]().FieldByName("rtpConn")
	if !ok || f.Type != reflect.TypeFor[net.PacketConn]() {
		return 0, false
	}
	return f.Offset, true
}()

// errNoRTPSocket: the session's RTP socket cannot be reached.
var errNoRTPSocket = errors.New("no RTP socket to filter")

// rtpSocket returns sess's RTP socket.
func rtpSocket(sess *media.MediaSession) (syscall.Conn, error) {
	if sess == nil || !rtpConnFound {
		return nil, errNoRTPSocket
	}
	pc := *(*net.PacketConn)(unsafe.Add(unsafe.Pointer(sess), rtpConnOffset))
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, errNoRTPSocket
	}
	return sc, nil
}

// deafProgram is the socket filter of a deaf leg: keep RTP packets of
// payload type dtmfPT, drop the rest; dtmfPT < 0 drops everything. A UDP
// socket's filter sees the datagram from its UDP header on, so the RTP
// header's marker and payload type byte is at offset 8+1; a datagram too
// short to have one is dropped.
func deafProgram(dtmfPT int) []unix.SockFilter {
	const keep = 0x40000 // bytes of the packet kept: all of it
	if dtmfPT < 0 || dtmfPT > 127 {
		return []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	}
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 8 + 1},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x7f},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(dtmfPT)},
		{Code: unix.BPF_RET | unix.BPF_K, K: keep},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
}

// setDeaf installs (on) or removes the deaf filter on sess's RTP socket.
func setDeaf(sess *media.MediaSession, on bool, dtmfPT int) error {
	sc, err := rtpSocket(sess)
	if err != nil {
		return err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if !on {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
			if errors.Is(serr, unix.ENOENT) {
				serr = nil // there was none
			}
			return
		}
		prog := deafProgram(dtmfPT)
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	return errors.Join(err, serr)
}
