package pbxtest

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callpark/callpark/internal/syncbuf"
)

// Capture is a packet capture on the loopback interface by tshark, for
// checks on what goes over the wire (SRTP, not plain RTP).
type Capture struct {
	file string
	cmd  *exec.Cmd
	done chan struct{}
	errs syncbuf.Buffer // tshark's stderr
}

// UDPPacket is one captured IPv4 UDP datagram.
type UDPPacket struct {
	SrcPort, DstPort int
	Payload          []byte
}

// StartCapture captures loopback traffic matching a BPF filter (such as
// "udp") until Stop; it returns once tshark is capturing.
func StartCapture(t testing.TB, filter string) *Capture {
	t.Helper()
	bin := RequireTool(t, "tshark", "tshark")
	c := &Capture{file: filepath.Join(t.TempDir(), "capture.pcap"), done: make(chan struct{})}
	// -F pcap: the classic format, read below without tshark.
	c.cmd = exec.Command(bin, "-q", "-i", "lo", "-f", filter, "-F", "pcap", "-w", c.file)
	c.cmd.Stderr = &c.errs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.stop() })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(c.stderr(), "Capturing on") {
		select {
		case <-c.done:
			t.Fatalf("tshark exited: %s", c.stderr())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark does not capture: %s", c.stderr())
		}
	}
	return c
}

func (c *Capture) stderr() string { return c.errs.String() }

func (c *Capture) stop() {
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// Stop ends the capture and returns its UDP datagrams.
func (c *Capture) Stop(t testing.TB) []UDPPacket {
	t.Helper()
	c.stop()
	data, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatalf("capture: %v (%s)", err, c.stderr())
	}
	pkts, err := parsePcap(data)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	return pkts
}

// parsePcap reads the IPv4 UDP datagrams of a classic pcap file of the
// Linux loopback interface (Ethernet framing).
func parsePcap(data []byte) ([]UDPPacket, error) {
	if len(data) < 24 {
		return nil, errShortPcap
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	default:
		bo = binary.BigEndian
	}
	link := bo.Uint32(data[20:])
	var out []UDPPacket
	for off := 24; off+16 <= len(data); {
		n := int(bo.Uint32(data[off+8:]))
		off += 16
		if off+n > len(data) {
			break
		}
		frame := data[off : off+n]
		off += n
		if link == 1 { // Ethernet
			if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
				continue
			}
			frame = frame[14:]
		}
		if len(frame) < 20 || frame[0]>>4 != 4 || frame[9] != 17 {
			continue
		}
		ihl := int(frame[0]&0x0f) * 4
		if len(frame) < ihl+8 {
			continue
		}
		udp := frame[ihl:]
		out = append(out, UDPPacket{
			SrcPort: int(binary.BigEndian.Uint16(udp[0:])),
			DstPort: int(binary.BigEndian.Uint16(udp[2:])),
			Payload: append([]byte(nil), udp[8:]...),
		})
	}
	return out, nil
}

type pcapError string

func (e pcapError) Error() string { return string(e) }

const errShortPcap = pcapError("not a pcap file")
