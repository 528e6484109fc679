// Package rtp carries the media of callpark's legs: each leg's RTP and
// RTCP sockets, the packets it sends, and the packets its phone sends,
// handed to the leg by a few poller goroutines shared by every leg.
//
// A leg's sockets are plain non-blocking UDP sockets outside Go's network
// poller. Each Engine runs one poller per core: a goroutine on an epoll
// instance that every leg's RTP socket is registered with, which reads
// what arrives and calls the leg's Receiver on its own goroutine. A leg
// therefore costs two file descriptors and a few hundred bytes, and no
// goroutine, no timer and no buffer of its own: a parked call that
// nobody listens to (its socket filtered, see SetDeaf) costs nothing at
// all between packets. (A goroutine per leg reading its socket, the usual
// Go way, was 8-20 KiB of stack per leg and a netpoll wake-up per packet.)
//
// RTCP: the RTCP socket (the RTP port + 1, RFC 3550 11) is bound so that a
// phone's reports reach no other socket, with the smallest receive queue
// the kernel allows, never read: callpark neither reads nor sends RTCP.
//
// SRTP with SDES keys (RFC 4568) is done per leg: Conn.Secure installs the
// two contexts, Write encrypts and the poller decrypts.
//
// Lock order: Conn.mu (writers, Close) is never held while taking a
// poller's lock; the poller never holds its lock while calling a Receiver.
package rtp
