// Package tuniotest has a stand-in for a TUN device in tests: one end of
// a SOCK_SEQPACKET socket pair, which like a TUN descriptor keeps packet
// boundaries and can be non-blocking (then tunio reads it in the poller
// with raw system calls, as a real device); the test writes packets into
// the other end.
package tuniotest

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SeqDev is the device (F) and the test's end of the pair (Peer).
type SeqDev struct{ F, Peer *os.File }

// NewSeqDev returns a SeqDev closed when the test ends.
func NewSeqDev(t testing.TB, nonblock bool) *SeqDev {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if nonblock {
		if err := unix.SetNonblock(fds[0], true); err != nil {
			t.Fatal(err)
		}
	}
	d := &SeqDev{F: os.NewFile(uintptr(fds[0]), "seq0"), Peer: os.NewFile(uintptr(fds[1]), "seq1")}
	t.Cleanup(func() { d.F.Close(); d.Peer.Close() })
	return d
}

func (d *SeqDev) Read(p []byte) (int, error)  { return d.F.Read(p) }
func (d *SeqDev) Write(p []byte) (int, error) { return d.F.Write(p) }
func (d *SeqDev) Close() error                { return d.F.Close() }
func (d *SeqDev) Name() string                { return "seq0" }
func (d *SeqDev) File() *os.File              { return d.F }

// Send queues packets on the device.
func (d *SeqDev) Send(t testing.TB, pkts ...[]byte) {
	t.Helper()
	for _, p := range pkts {
		if _, err := d.Peer.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// Mapped says which of addrs lie in a mapping of this process (the kernel
// merges neighbouring anonymous ones), for tests that check a ring's
// mappings are gone after Close.
func Mapped(t testing.TB, addrs []uintptr) []uintptr {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var out []uintptr
	for _, a := range addrs {
		for line := range strings.Lines(string(b)) {
			var lo, hi uintptr
			if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && lo <= a && a < hi {
				out = append(out, a)
				break
			}
		}
	}
	return out
}
