package dataplane

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/offload"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio/tuniotest"
)

// vnetPacket is a plain (no GSO) virtio_net_hdr and an IPv4 packet of
// size bytes carrying proto.
func vnetPacket(proto byte, size int) []byte {
	b := make([]byte, offload.HdrLen+size)
	ip := b[offload.HdrLen:]
	ip[0], ip[2], ip[3], ip[8], ip[9] = 0x45, byte(size>>8), byte(size), 64, proto
	return b
}

// The TUN reader lingers after a bulk UDP datagram and sends what came
// meanwhile in one send (one wake-up and one sendmmsg for the rest of a
// paced sender's burst), lingers again only while lingering brings
// datagrams, and never after TCP or a small datagram; with the profile's
// "ovpn3go-offload tx-moderation off" never. The same through io_uring
// and with read(2) ("ovpn3go-offload uring off").
func TestTunReaderLingersForDatagramBursts(t *testing.T) {
	for _, c := range []struct{ on, uring bool }{{true, true}, {false, true}, {true, false}, {false, false}} {
		on := c.on
		t.Run(fmt.Sprintf("tx-moderation %v, uring %v", on, c.uring), func(t *testing.T) {
			ckey, skey := dataPlaneKeys(t, 3)
			peer := newTestPeer(t, skey)
			peer.receive()
			defer peer.close()
			tr, _ := dialBenchTransport(t, peer)
			defer tr.Close()
			p := benchMode{name: "tun+udp", tun: true, gso: true, mmsg: true}.plane()
			p.off.NoTxMod, p.off.NoUring = !on, !c.uring
			if err := p.NewConn(ConnConfig{Transport: tr}).InstallKey(Primary, ckey); err != nil {
				t.Fatal(err)
			}
			tx := p.tx.Load()
			dev := tuniotest.NewSeqDev(t, true) // without TUNGETIFF: readVnet is called directly
			burst := 0
			if on {
				burst = 5
			}
			bulk := vnetPacket(unix.IPPROTO_UDP, 1300)
			var lingers int
			p.txSleep = func(d time.Duration) {
				if d != txLinger {
					t.Errorf("lingered %v, want txLinger (%v)", d, txLinger)
				}
				lingers++
				if lingers == 1 { // the rest of the burst arrives during the first linger
					for range burst {
						if _, err := dev.Peer.Write(bulk); err != nil {
							t.Error(err)
						}
					}
				}
			}
			ring := p.openRing(dev)
			if (ring != nil) != c.uring {
				t.Fatalf("io_uring reader %v, want %v (this kernel has io_uring)", ring != nil, c.uring)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.readVnet(dev, ring, nil, nil)
			}()
			got := func() int64 { return peer.got.Load() }
			dev.Send(t, bulk)
			wait(t, true, got, int64(1+burst), "peer (burst)")
			dev.Send(t, vnetPacket(unix.IPPROTO_TCP, 1300))
			wait(t, true, got, int64(2+burst), "peer (TCP)")
			dev.Send(t, vnetPacket(unix.IPPROTO_UDP, 200))
			wait(t, true, got, int64(3+burst), "peer (small datagram)")
			dev.F.Close()
			<-done
			if ring != nil {
				ring.Close()
			}
			wantLingers, wantSends := 2, int64(4)
			if !on {
				wantLingers, wantSends = 0, 3
			}
			if lingers != wantLingers {
				t.Errorf("%d lingers, want %d: after the first datagram, after the burst it brought (which finds nothing), none after TCP or a small datagram; none switched off", lingers, wantLingers)
			}
			if tx.bw.Sends != wantSends {
				t.Errorf("%d sendmmsg calls, want %d: the first datagram, the rest of its burst together, the TCP packet, the small datagram", tx.bw.Sends, wantSends)
			}
		})
	}
}

func TestBulkDatagrams(t *testing.T) {
	v6 := func(next byte, size int) []byte {
		b := make([]byte, offload.HdrLen+size)
		b[offload.HdrLen], b[offload.HdrLen+6] = 0x60, next
		return b
	}
	uso := vnetPacket(unix.IPPROTO_UDP, 1300)
	uso[1] = offload.GSOUDPL4
	tso := vnetPacket(unix.IPPROTO_TCP, 1300)
	tso[1] = offload.GSOTCPv4
	for _, c := range []struct {
		name string
		pkts [][]byte
		want bool
	}{
		{"IPv4 UDP 1300", [][]byte{vnetPacket(unix.IPPROTO_UDP, 1300)}, true},
		{"IPv6 UDP 1300", [][]byte{v6(unix.IPPROTO_UDP, 1300)}, true},
		{"USO super-packet", [][]byte{uso}, true},
		{"TCP then UDP", [][]byte{vnetPacket(unix.IPPROTO_TCP, 1300), vnetPacket(unix.IPPROTO_UDP, 1300)}, true},
		{"IPv4 TCP 1300", [][]byte{vnetPacket(unix.IPPROTO_TCP, 1300)}, false},
		{"IPv6 TCP 1300", [][]byte{v6(unix.IPPROTO_TCP, 1300)}, false},
		{"TSO super-packet", [][]byte{tso}, false},
		{"IPv4 UDP 999", [][]byte{vnetPacket(unix.IPPROTO_UDP, txLingerMinLen-1)}, false},
		{"ICMP 1300", [][]byte{vnetPacket(unix.IPPROTO_ICMP, 1300)}, false},
	} {
		var rbuf []byte
		var offs, sizes []int
		for _, p := range c.pkts {
			offs, sizes = append(offs, len(rbuf)), append(sizes, len(p))
			rbuf = append(rbuf, p...)
		}
		if got := bulkDatagrams(rbuf, offs, sizes); got != c.want {
			t.Errorf("%s: bulkDatagrams %v, want %v", c.name, got, c.want)
		}
	}
}
