package dataplane

import (
	"fmt"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio/tuniotest"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// vnetReader is a plane connected to a test peer whose TUN reader reads
// dev (a stand-in with virtio_net_hdr packets) through ring (nil: with
// read(2)) until stop.
type vnetReader struct {
	p    *Plane
	peer *testPeer
	dev  *tuniotest.SeqDev
	ring *tunio.RingReader
	done chan struct{}
}

func startVnetReader(t *testing.T, noUring bool) *vnetReader {
	t.Helper()
	ckey, skey := dataPlaneKeys(t, 3)
	peer := newTestPeer(t, skey)
	peer.receive()
	t.Cleanup(peer.close)
	tr, _ := dialBenchTransport(t, peer)
	t.Cleanup(func() { tr.Close() })
	p := modeAll.plane()
	p.off.NoTxMod, p.off.NoUring = true, noUring
	if err := p.NewConn(ConnConfig{Transport: tr}).InstallKey(Primary, ckey); err != nil {
		t.Fatal(err)
	}
	v := &vnetReader{p: p, peer: peer, dev: tuniotest.NewSeqDev(t, true), done: make(chan struct{})}
	v.ring = p.openRing(v.dev)
	go func() {
		defer close(v.done)
		p.readVnet(v.dev, v.ring, nil, nil)
	}()
	t.Cleanup(v.stop)
	return v
}

// stop closes the device and the ring as CloseTun does, waiting for the
// reader.
func (v *vnetReader) stop() {
	v.dev.F.Close()
	<-v.done
	if v.ring != nil {
		v.ring.Close()
		v.ring = nil
	}
}

// send queues n datagrams on the device and waits until the peer got
// them all.
func (v *vnetReader) send(t *testing.T, n int) {
	t.Helper()
	pkt := vnetPacket(unix.IPPROTO_UDP, 1300)
	want := v.peer.got.Load() + int64(n)
	for range n {
		if _, err := v.dev.Peer.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, true, v.peer.got.Load, want, "peer")
}

// The TUN reader's steady state allocates nothing per packet, through
// io_uring and with read(2): 5000 datagrams cost no more allocations
// than a few batches' worth of set-up.
func TestTunReaderNoAllocPerPacket(t *testing.T) {
	for _, noUring := range []bool{false, true} {
		t.Run(fmt.Sprintf("uring %v", !noUring), func(t *testing.T) {
			v := startVnetReader(t, noUring)
			if (v.ring != nil) == noUring {
				t.Fatalf("io_uring reader %v with uring off %v (this kernel has io_uring)", v.ring != nil, noUring)
			}
			v.send(t, 200) // the segment buffer and the batch writer grow
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v.send(t, 5000)
			runtime.ReadMemStats(&after)
			if allocs := after.Mallocs - before.Mallocs; allocs > 500 {
				t.Errorf("%d allocations for 5000 packets: the TUN reader allocates per packet", allocs)
			}
		})
	}
}

// Where the kernel refuses io_uring (ENOSYS; EPERM from
// io_uring_disabled=2 or a seccomp filter), the plane reads the device
// with read(2): every packet still goes through.
func TestTunReaderFallsBackWhenIoUringIsRefused(t *testing.T) {
	for _, errno := range []unix.Errno{unix.ENOSYS, unix.EPERM} {
		t.Run(errno.Error(), func(t *testing.T) {
			restore := uring.Refuse(errno)
			v := startVnetReader(t, false)
			restore()
			if v.ring != nil {
				t.Fatal("the plane reads through io_uring although the kernel refused it")
			}
			v.send(t, 300)
		})
	}
}
