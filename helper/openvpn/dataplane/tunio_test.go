package dataplane

import (
	"cmp"
	"sync/atomic"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
)

// batchTun hands out the generator's packets up to four per ReadBatch, as
// a batching TUN device (tunio.Device) does, or per ReadPackets, as a
// device drained per wake-up (tunio.Reader) does when packets queued up.
type batchTun struct {
	*genTun
	size  int // 0: 4
	reads atomic.Int64
}

func (b *batchTun) BatchSize() int { return cmp.Or(b.size, 4) }

func (b *batchTun) ReadBatch(bufs [][]byte, sizes []int, off int) (int, error) {
	b.reads.Add(1)
	k := 0
	for k < min(len(bufs), b.BatchSize()) {
		if k > 0 && b.left.Load() <= 0 {
			break // Read would block until the device closes
		}
		n, err := b.Read(bufs[k][off:])
		if err != nil {
			if k > 0 {
				break
			}
			return 0, err
		}
		sizes[k] = n
		k++
	}
	return k, nil
}

func (b *batchTun) ReadPackets(buf []byte, lay tunio.Layout, offs, sizes []int) (int, error) {
	b.reads.Add(1)
	k, start := 0, lay.Head
	for k < min(len(offs), b.BatchSize()) && start+lay.Max+lay.Tail <= len(buf) {
		if k > 0 && b.left.Load() <= 0 {
			break // Read would block until the device closes
		}
		n, err := b.Read(buf[start : start+lay.Max])
		if err != nil {
			if k > 0 {
				break
			}
			return 0, err
		}
		offs[k], sizes[k] = start, n
		k++
		start += n + lay.Tail + lay.Head
	}
	return k, nil
}

func (b *batchTun) WriteBatch(bufs [][]byte, off int) (int, error) {
	for i, p := range bufs {
		if _, err := b.Write(p[off:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// TestDataPlaneBatchedTun: a TUN device that batches (without the TUN
// offload) is read in batches (a quarter of the calls), each batch leaves
// in one send syscall when the batch writer is on, and every packet of a
// batch still reaches the peer sealed so that the server key opens it to
// the same bytes.
func TestDataPlaneBatchedTun(t *testing.T) {
	const n = 200
	for _, mode := range []benchMode{modeNone, {name: "udp-mmsg", mmsg: true}} {
		var bt *batchTun
		r := runUpWith(t, 1400, mode, n, true, func(g *genTun) tunio.PacketDevice { bt = &batchTun{genTun: g}; return bt })
		if r.sent != n || r.received != n {
			t.Fatalf("%s: sent %d, peer got %d of %d", mode.name, r.sent, r.received, n)
		}
		if reads := bt.reads.Load(); reads < n/4 || reads > n/4+1 {
			t.Errorf("%s: %d ReadBatch calls for %d packets in batches of 4, want %d or one more (the read ended by Close)", mode.name, reads, n, n/4)
		}
		if mode.mmsg && r.sends != n/4 {
			t.Errorf("%s: %d send syscalls for %d packets read in batches of 4, want %d", mode.name, r.sends, n, n/4)
		}
	}
}

// TestDataPlaneDrainedTun: with the TUN offload, the packets one wake-up
// found queued on the device (four per ReadPackets here, one packet each)
// leave in one send syscall, and every one reaches the peer sealed so
// that the server key opens it to the same bytes.
func TestDataPlaneDrainedTun(t *testing.T) {
	const n = 200
	for _, mode := range []benchMode{{name: "tun+udp-mmsg", tun: true, mmsg: true}, modeAll} {
		var bt *batchTun
		r := runUpWith(t, 100, mode, n, true, func(g *genTun) tunio.PacketDevice { bt = &batchTun{genTun: g}; return bt })
		if r.sent != n || r.received != n {
			t.Fatalf("%s: sent %d, peer got %d of %d", mode.name, r.sent, r.received, n)
		}
		if reads := bt.reads.Load(); reads < n/4 || reads > n/4+1 {
			t.Errorf("%s: %d ReadPackets calls for %d packets queued four at a time, want %d or one more (the read ended by Close)", mode.name, reads, n, n/4)
		}
		if r.sends != n/4 {
			t.Errorf("%s: %d send syscalls for %d packets read four at a time, want %d", mode.name, r.sends, n, n/4)
		}
	}
}
