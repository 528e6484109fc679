package rtp

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Deaf filters as eBPF programs. A classic filter (SO_ATTACH_FILTER) is
// checked and compiled anew by the kernel at every attach: 70-90 µs, a
// fifth of a park+retrieve cycle's budget at 1,000 cycles a second. The
// same program loaded once as eBPF (one per payload type kept, a handful)
// is attached by descriptor (SO_ATTACH_BPF) in about a microsecond.
// Loading needs the privilege to (CAP_BPF or root, or unprivileged BPF
// allowed); without it, filters stay classic.

// programs caches the loaded eBPF deaf programs by payload type kept (-1:
// none kept).
type programs struct {
	mu     sync.Mutex
	fds    map[int]int
	failed bool // loading is not allowed here: classic filters
}

// fd returns the program keeping payload type keepPT, loading it once;
// ok false when eBPF cannot be used.
func (p *programs) fd(keepPT int) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return -1, false
	}
	if fd, ok := p.fds[keepPT]; ok {
		return fd, true
	}
	fd, err := loadSocketFilter(deafInstructions(keepPT))
	if err != nil {
		p.failed = true
		return -1, false
	}
	if p.fds == nil {
		p.fds = map[int]int{}
	}
	p.fds[keepPT] = fd
	return fd, true
}

func (p *programs) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fd := range p.fds {
		unix.Close(fd)
	}
	p.fds = nil
}

// attachDeaf installs the deaf filter keeping keepPT on fd: eBPF when it
// can, classic otherwise.
func (p *programs) attachDeaf(fd, keepPT int) error {
	if keepPT < 0 || keepPT > 127 {
		keepPT = -1
	}
	if prog, ok := p.fd(keepPT); ok {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog)
	}
	return attachFilter(fd, deafProgram(keepPT))
}

// insn is one eBPF instruction (struct bpf_insn).
type insn struct {
	code uint8
	regs uint8 // dst in the low nibble, src in the high one
	off  int16
	imm  int32
}

// deafInstructions is deafProgram in eBPF: the byte at offset 9 of the
// datagram from its UDP header on (the RTP marker and payload type) is
// loaded the legacy way (LD_ABS, which drops a datagram too short for it),
// and the packet kept whole if the payload type is keepPT, else dropped.
func deafInstructions(keepPT int) []insn {
	const (
		ldAbsB   = unix.BPF_LD | unix.BPF_ABS | unix.BPF_B
		mov64Reg = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X
		mov64Imm = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
		and64Imm = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K
		jeqImm   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		exit     = unix.BPF_JMP | unix.BPF_EXIT
		keep     = 0x40000
	)
	if keepPT < 0 {
		return []insn{{code: mov64Imm}, {code: exit}}
	}
	return []insn{
		{code: mov64Reg, regs: 6 | 1<<4}, // r6 = r1 (LD_ABS reads the packet through r6)
		{code: ldAbsB, imm: 8 + 1},       // r0 = byte 9
		{code: and64Imm, imm: 0x7f},      // r0 &= 0x7f
		{code: jeqImm, off: 2, imm: int32(keepPT)},
		{code: mov64Imm, imm: 0}, // drop
		{code: exit},
		{code: mov64Imm, imm: keep}, // keep it all
		{code: exit},
	}
}

// loadSocketFilter loads a socket filter program (bpf(BPF_PROG_LOAD)).
func loadSocketFilter(prog []insn) (int, error) {
	code := make([]byte, 8*len(prog))
	for i, in := range prog {
		b := code[8*i:]
		b[0] = in.code
		b[1] = in.regs
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
	}
	license := []byte("GPL\x00")
	// union bpf_attr, the BPF_PROG_LOAD part: prog_type, insn_cnt, insns,
	// license; everything after is zero.
	var attr [128]byte
	binary.NativeEndian.PutUint32(attr[0:], unix.BPF_PROG_TYPE_SOCKET_FILTER)
	binary.NativeEndian.PutUint32(attr[4:], uint32(len(prog)))
	binary.NativeEndian.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&code[0]))))
	binary.NativeEndian.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
	keepAlive(code, license)
	if errno != 0 {
		return -1, errno
	}
	unix.CloseOnExec(int(fd))
	return int(fd), nil
}

// keepAlive keeps buffers referenced only by address alive until here.
//
//go:noinline
func keepAlive(...[]byte) {}
