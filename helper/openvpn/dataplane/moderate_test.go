package dataplane

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/transporttest"
)

// TestReceiveModeration: the moderator puts a read off only while a bulk
// flow's datagrams come closer together than the delay and waiting
// gathers more than one per read; never after a quiet spell, small
// datagrams or a full batch, and never when switched off. The clock and
// the sleep are the test's: nothing depends on real time.
func TestReceiveModeration(t *testing.T) {
	const max, bulk, small = 32, 1400, 100
	const d = modDelay
	steps := []struct {
		what     string
		dt       time.Duration // clock advance before the read returns
		n, bytes int
		wait     bool // the next read is put off
	}{
		{"first read after a quiet spell", time.Second, 1, bulk, false},
		{"bulk datagram half the delay after the last", d / 2, 1, bulk, true},
		{"waiting gathered three", d + d/4, 3, 3 * bulk, true},
		{"waiting gathered one: back to reading as they come", d + d/4, 1, bulk, false},
		{"close together again", d / 3, 1, bulk, true},
		{"a full batch: more is queued, read at once", d + d/4, max, max * bulk, false},
		{"small datagrams close together (ACKs, interactive)", d / 10, 2, 2 * small, false},
		{"a lone ping right behind", d / 10, 1, small, false},
		{"bulk, but ten delays apart", 10 * d, 1, bulk, false},
		{"bulk, close again", d - 1, 1, bulk, true},
		{"the read found nothing (0 datagrams)", d + d/4, 0, 0, false},
	}
	for _, delay := range []time.Duration{modDelay, 0} {
		now := time.Unix(1000, 0)
		var slept []time.Duration
		m := newModerator(delay, func() time.Time { return now }, func(d time.Duration) { slept = append(slept, d) })
		wantSleeps := 0
		for _, s := range steps {
			m.before()
			now = now.Add(s.dt)
			m.after(s.n, max, s.bytes)
			want := s.wait && delay > 0
			if m.wait != want {
				t.Errorf("delay %v, %s: next read put off %v, want %v", delay, s.what, m.wait, want)
			}
			if m.wait {
				wantSleeps++
			}
		}
		m.before()
		if len(slept) != wantSleeps {
			t.Errorf("delay %v: %d sleeps, want %d", delay, len(slept), wantSleeps)
		}
		for _, d := range slept {
			if d != delay {
				t.Errorf("delay %v: slept %v", delay, d)
			}
		}
	}
}

// TestReceiveModerationNoAlloc: a moderated read's bookkeeping and its
// sleep (the thread's own, here a microsecond) allocate nothing.
func TestReceiveModerationNoAlloc(t *testing.T) {
	now := time.Unix(1000, 0)
	m := newModerator(time.Microsecond, func() time.Time { return now }, nil)
	allocs := testing.AllocsPerRun(100, func() {
		m.before()
		now = now.Add(time.Nanosecond)
		m.after(2, 32, 2800)
	})
	if !m.held || allocs != 0 {
		t.Errorf("moderated reads: held %v, %v allocations per read", m.held, allocs)
	}
}

// TestReceiveModerationSwitch: on a UDP transport the read loop puts the
// read after a busy flow's datagrams off by modDelay, unless the profile
// switched rx-moderation off; every packet reaches the TUN device either
// way. The plane's clock stands still, so datagrams read one after the
// other count as close together whatever the machine's speed; the sleep
// is counted, not slept.
func TestReceiveModerationSwitch(t *testing.T) {
	for _, on := range []bool{true, false} {
		ckey, skey := dataPlaneKeys(t, 3)
		peer := newTestPeer(t, skey)
		tr, conn := dialBenchTransport(t, peer)
		now := time.Unix(1000, 0)
		p := New(Config{Now: func() time.Time { return now }, Offloads: Offloads{NoRxMod: !on}})
		var slept atomic.Int64
		sleeps := make(chan time.Duration, 16)
		p.modSleep = func(d time.Duration) {
			slept.Add(1)
			select {
			case sleeps <- d:
			default:
			}
		}
		tun := newGenTun(nil, 0)
		tun.vnet = true
		tun.checkSeg = validSegment
		p.tunW.Store(&tunWriter{w: tun, vnet: true})
		dc := p.NewConn(ConnConfig{Transport: tr})
		if err := dc.InstallKey(Primary, ckey); err != nil {
			t.Fatal(err)
		}
		readEnd := make(chan error, 1)
		go func() { readEnd <- dc.ReadLoop() }()
		const size, n = 1400, 3
		seg := make([]byte, size)
		buf := make([]byte, 0, skey.SealBufferLen(size))
		for i := range n {
			// One at a time: each is read alone.
			pkt, err := skey.Seal(buf[:0], tcpSegment(seg, size, uint32(i*(size-40))))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := peer.c.WriteTo(pkt, conn.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			wait(t, true, func() int64 { return tun.wrote.Load() }, int64(i+1), "TUN")
			if on && i == 1 {
				// The second read came right behind the first: the
				// third is put off.
				select {
				case d := <-sleeps:
					if d != modDelay {
						t.Errorf("read put off by %v, want %v", d, modDelay)
					}
				case <-time.After(30 * time.Second):
					t.Fatal("rx-moderation on: the read after two close datagrams was not put off")
				}
			}
		}
		tr.Close()
		if err := <-readEnd; err == nil {
			t.Error("ReadLoop ended without an error after the transport closed")
		}
		peer.close()
		if tun.bad.Load() != 0 || dc.Dropped() != 0 {
			t.Errorf("rx-moderation %v: %d wrong packets on the TUN device, %d dropped", on, tun.bad.Load(), dc.Dropped())
		}
		if !on && slept.Load() != 0 {
			t.Errorf("rx-moderation off: %d reads put off", slept.Load())
		}
	}
}

// TestModerationOnlyForUDP: only a plain UDP socket (read with recvmmsg)
// is moderated, and only while the profile leaves rx-moderation on; other
// transports (TCP, a proxy, a floating server's) are read as they come.
func TestModerationOnlyForUDP(t *testing.T) {
	_, skey := dataPlaneKeys(t, 3)
	peer := newTestPeer(t, skey)
	defer peer.close()
	udp, _ := dialBenchTransport(t, peer)
	defer udp.Close()
	for _, tc := range []struct {
		name string
		tr   transport.Conn
		off  bool
		want time.Duration
	}{
		{"udp", udp, false, modDelay},
		{"udp, rx-moderation off", udp, true, 0},
		{"another transport", &transporttest.Discard{}, false, 0},
	} {
		p := New(Config{Offloads: Offloads{NoRxMod: tc.off}})
		if got := p.NewConn(ConnConfig{Transport: tc.tr}).moderation(); got != tc.want {
			t.Errorf("%s: reads put off by %v, want %v", tc.name, got, tc.want)
		}
	}
}
