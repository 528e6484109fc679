package rtp

import (
	"testing"

	"golang.org/x/sys/unix"
)

func BenchmarkAttachDropAll(b *testing.B) {
	fd, _, _ := bindUDP(loopback, 0)
	defer unix.Close(fd)
	for b.Loop() {
		attachFilter(fd, dropAll)
	}
}

func BenchmarkAttachDeaf(b *testing.B) {
	fd, _, _ := bindUDP(loopback, 0)
	defer unix.Close(fd)
	for b.Loop() {
		attachFilter(fd, deafProgram(101))
	}
}

func BenchmarkRcvbuf(b *testing.B) {
	fd, _, _ := bindUDP(loopback, 0)
	defer unix.Close(fd)
	for b.Loop() {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1)
	}
}

func BenchmarkBindClose(b *testing.B) {
	for b.Loop() {
		fd, _, _ := bindUDP(loopback, 0)
		unix.Close(fd)
	}
}

func BenchmarkOpenClose(b *testing.B) {
	e := start(b, 1)
	for b.Loop() {
		c, err := e.Open(newInbox())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

func BenchmarkAttachDeafBPF(b *testing.B) {
	fd, _, _ := bindUDP(loopback, 0)
	defer unix.Close(fd)
	var p programs
	defer p.close()
	for b.Loop() {
		if err := p.attachDeaf(fd, 101); err != nil {
			b.Fatal(err)
		}
	}
	if p.failed {
		b.Skip("no eBPF here")
	}
}

func BenchmarkBindExplicit(b *testing.B) {
	port := 40000
	for b.Loop() {
		fd, _, err := bindUDP(loopback, port)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
		port += 2
		if port > 50000 {
			port = 40000
		}
	}
}

// BenchmarkBindWithMany: ephemeral binds while 10,000 sockets are bound.
func BenchmarkBindWithMany(b *testing.B) {
	var fds []int
	for range 10000 {
		fd, _, err := bindUDP(loopback, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	b.ResetTimer()
	for b.Loop() {
		fd, _, _ := bindUDP(loopback, 0)
		unix.Close(fd)
	}
}
