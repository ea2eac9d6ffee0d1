package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// fakeKernel stands in for the kernel's ovpn module, which this machine
// lacks: it implements DCO in userspace the way the kernel does it. Its
// sockets (from Dial) behave like a UDP socket with the ovpn encap hook:
// once a peer holds the socket, DATA_V2 packets go to the peer and only
// the rest reaches the engine's reads. Keys are built only from what
// InstallKey hands over in the kernel's form (cipher key and nonce tail
// per direction), so traffic flows only if that form is right. Every call
// is recorded.
type fakeKernel struct {
	dial DialFunc
	tun  TunProvider

	mu     sync.Mutex
	calls  []string
	socks  []*fakeSock
	planes []*fakePlane
}

func (f *fakeKernel) record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeKernel) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeKernel) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := f.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	s := &fakeSock{Conn: c}
	f.mu.Lock()
	f.socks = append(f.socks, s)
	f.mu.Unlock()
	return s, nil
}

func (f *fakeKernel) NewPeer(ctx context.Context, p DCOPeer) (DCOPlane, error) {
	s, ok := p.Conn.(*fakeSock)
	if !ok {
		return nil, fmt.Errorf("socket %T was not opened through the fake kernel", p.Conn)
	}
	if !p.Remote.IsValid() || p.Remote.String() != s.RemoteAddr().String() {
		return nil, fmt.Errorf("peer remote %v, socket connected to %v", p.Remote, s.RemoteAddr())
	}
	tun, err := f.tun.OpenTun(ctx, p.Net)
	if err != nil {
		return nil, err
	}
	f.record("new-peer id=%d", p.PeerID)
	pl := &fakePlane{k: f, sock: s, tun: tun, peerID: p.PeerID, deleted: make(chan string, 1), stop: make(chan struct{})}
	f.mu.Lock()
	f.planes = append(f.planes, pl)
	f.mu.Unlock()
	s.peer.Store(pl)
	pl.wg.Add(1)
	go pl.tunReader()
	return pl, nil
}

// fakeSock is the engine's UDP socket as the kernel leaves it to
// userspace once a peer holds it.
type fakeSock struct {
	net.Conn
	peer atomic.Pointer[fakePlane]
}

func (s *fakeSock) Read(b []byte) (int, error) {
	for {
		n, err := s.Conn.Read(b)
		if err != nil || n == 0 {
			return n, err
		}
		if p := s.peer.Load(); p != nil {
			if op, _ := wire.SplitHeader(b[0]); op == wire.OpDataV2 {
				p.receive(b[:n])
				continue
			}
		}
		return n, nil
	}
}

type fakePlane struct {
	k      *fakeKernel
	sock   *fakeSock
	tun    TunDevice
	peerID uint32

	mu    sync.Mutex
	slots [2]*datachan.Key

	linkRxB, linkTxB, linkRxP, linkTxP atomic.Int64
	vpnRxB, vpnTxB, vpnRxP, vpnTxP     atomic.Int64
	rxByKey                            [8]atomic.Int64 // decrypted packets per key_id
	rxDropped                          [8]atomic.Int64 // packets per key_id not decrypted
	lastRx                             atomic.Int64
	deleted                            chan string
	stop                               chan struct{}
	closeOnce                          sync.Once
	wg                                 sync.WaitGroup
}

func (p *fakePlane) InstallKey(slot KeySlot, dk *DataKey) error {
	p.k.record("install slot=%s key=%d peer=%d cipher=%s", slot, dk.KeyID, dk.PeerID, dk.Cipher)
	if dk.PeerID < 0 || uint32(dk.PeerID) != p.peerID {
		return fmt.Errorf("key for peer %d, peer is %d", dk.PeerID, p.peerID)
	}
	block, err := datachan.KeyBlockFromDirections(dk.Cipher, dk.Encrypt.CipherKey, dk.Encrypt.NonceTail, dk.Decrypt.CipherKey, dk.Decrypt.NonceTail)
	if err != nil {
		return err
	}
	key, err := datachan.NewKey(dk.Cipher, dk.KeyID, block, int(p.peerID))
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.slots[slot] = key
	p.mu.Unlock()
	return nil
}

func (p *fakePlane) SwapKeys() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots[1] == nil {
		p.k.record("swap (refused: empty secondary)")
		return errors.New("no secondary key")
	}
	p.slots[0], p.slots[1] = p.slots[1], p.slots[0]
	p.k.record("swap primary=%d", p.slots[0].KeyID())
	return nil
}

func (p *fakePlane) DeleteKey(slot KeySlot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := -1
	if k := p.slots[slot]; k != nil {
		id = int(k.KeyID())
	}
	p.slots[slot] = nil
	p.k.record("delete slot=%s key=%d", slot, id)
	return nil
}

func (p *fakePlane) SetKeepalive(interval, timeout time.Duration) error {
	p.k.record("keepalive %s/%s", interval, timeout)
	if interval <= 0 {
		return nil
	}
	p.lastRx.Store(time.Now().UnixNano())
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			p.send(datachan.PingPayload[:], false)
			if timeout > 0 && time.Since(time.Unix(0, p.lastRx.Load())) > timeout {
				p.deleted <- "keepalive expired"
				return
			}
		}
	}()
	return nil
}

func (p *fakePlane) Stats() (PlaneStats, error) {
	return PlaneStats{
		LinkRxBytes: p.linkRxB.Load(), LinkTxBytes: p.linkTxB.Load(), LinkRxPackets: p.linkRxP.Load(), LinkTxPackets: p.linkTxP.Load(),
		VPNRxBytes: p.vpnRxB.Load(), VPNTxBytes: p.vpnTxB.Load(), VPNRxPackets: p.vpnRxP.Load(), VPNTxPackets: p.vpnTxP.Load(),
	}, nil
}

func (p *fakePlane) Deleted() <-chan string { return p.deleted }

func (p *fakePlane) Close() error {
	p.closeOnce.Do(func() {
		p.k.record("del-peer id=%d", p.peerID)
		p.sock.peer.Store(nil)
		close(p.stop)
		p.tun.Close()
		p.wg.Wait()
	})
	return nil
}

func (p *fakePlane) tunReader() {
	defer p.wg.Done()
	buf := make([]byte, maxTunPacket)
	for {
		n, err := p.tun.Read(buf)
		if err != nil {
			return
		}
		if n > 0 {
			p.send(buf[:n], true)
		}
	}
}

func (p *fakePlane) send(plain []byte, vpn bool) {
	p.mu.Lock()
	k := p.slots[SlotPrimary]
	var pkt []byte
	var err error
	if k != nil {
		pkt, err = k.Seal(nil, plain)
	}
	p.mu.Unlock()
	if k == nil || err != nil {
		return
	}
	if _, err := p.sock.Conn.Write(pkt); err != nil {
		return
	}
	p.linkTxB.Add(int64(len(pkt)))
	p.linkTxP.Add(1)
	if vpn {
		p.vpnTxB.Add(int64(len(plain)))
		p.vpnTxP.Add(1)
	}
}

func (p *fakePlane) receive(pkt []byte) {
	_, id := wire.SplitHeader(pkt[0])
	p.mu.Lock()
	var k *datachan.Key
	for _, s := range p.slots {
		if s != nil && s.KeyID() == id {
			k = s
		}
	}
	var plain []byte
	var err error
	if k != nil {
		plain, err = k.Open(nil, pkt)
	}
	p.mu.Unlock()
	if k == nil || err != nil {
		p.rxDropped[id].Add(1)
		return
	}
	p.linkRxB.Add(int64(len(pkt)))
	p.linkRxP.Add(1)
	p.lastRx.Store(time.Now().UnixNano())
	p.rxByKey[id].Add(1)
	if datachan.IsPing(plain) {
		return
	}
	if _, err := p.tun.Write(plain); err != nil && !errors.Is(err, os.ErrClosed) {
		return
	}
	p.vpnRxB.Add(int64(len(plain)))
	p.vpnRxP.Add(1)
}

// TestIntegrationDCOKeyHandover runs the engine against the real OpenVPN
// 2.6 server with the fake kernel as its DCO: the connection is offloaded,
// traffic flows only through the offloaded peer, each renegotiation (the
// server's reneg-sec 10) installs the new key in the secondary slot and
// swaps it to primary, the lame duck is deleted after tran-window (and
// decrypts until then: no ping may be lost to a key change), with
// the pushed peer-id on every key, and the session statistics are the
// peer's.
func TestIntegrationDCOKeyHandover(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: testbed.ProtoUDP, Extra: []string{"reneg-sec 10"}})
	fk := &fakeKernel{dial: nsDial(pair.ClientNS), tun: &nsTun{ns: clientNS(t, pair)}}
	c, states, ctx, stop := runClient(t, pair, srv.Profile()+"tran-window 7\n", func(cfg *Config) {
		cfg.DCO = fk
		cfg.Dial = fk.Dial
		cfg.Tun = failingTun{t}
	})
	if off, why := c.DataPath(); !off {
		t.Fatalf("connection not offloaded: %s", why)
	}
	// 25 s of pings: two renegotiations and their lame-duck deletions.
	if err := testbed.PingLoss(ctx, pair.ClientNS, testbed.TunnelServer4, 125, 1); err != nil {
		t.Errorf("through the offloaded peer: %v", err)
	}
	live := c.Stats()
	stop()
	for _, s := range states.all() {
		if s == StateReconnecting {
			t.Fatalf("reconnected instead of renegotiating: %v", states.all())
		}
	}

	calls := fk.log()
	t.Logf("DCO calls:\n  %s", strings.Join(calls, "\n  "))
	if len(fk.planes) != 1 {
		t.Fatalf("%d peers created, want 1", len(fk.planes))
	}
	pl := fk.planes[0]
	peer := pl.peerID
	// What the hand-over must look like, in this order.
	want := []string{
		fmt.Sprintf("new-peer id=%d", peer),
		"keepalive ", // interval/timeout are the pushed ones
		fmt.Sprintf("install slot=primary key=0 peer=%d cipher=AES-256-GCM", peer),
	}
	rot := 0
	i := 3
	for prev := 0; ; {
		if i >= len(calls) || strings.HasPrefix(calls[i], "del-peer") {
			break
		}
		next := prev%7 + 1
		step := []string{
			fmt.Sprintf("install slot=secondary key=%d peer=%d cipher=AES-256-GCM", next, peer),
			fmt.Sprintf("swap primary=%d", next),
		}
		// The lame duck goes tran-window (7 s) after the renegotiation
		// started, before the next one (10 s). Not much earlier: the
		// OpenVPN 2.6 server keeps sending with the old key for
		// min(hand-window, reneg-sec/2) = 5 s after a renegotiation
		// starts (ssl.c auth_deferred_expire), which the secondary slot
		// must still decrypt.
		if i+2 < len(calls) && !strings.HasPrefix(calls[i+2], "del-peer") {
			step = append(step, fmt.Sprintf("delete slot=secondary key=%d", prev))
		}
		want = append(want, step...)
		i += len(step)
		prev = next
		rot++
	}
	want = append(want, fmt.Sprintf("del-peer id=%d", peer))
	if len(calls) != len(want) {
		t.Fatalf("%d DCO calls, want %d:\n got %q\nwant %q", len(calls), len(want), calls, want)
	}
	for i := range want {
		if !strings.HasPrefix(calls[i], want[i]) {
			t.Errorf("DCO call %d: %q, want %q", i, calls[i], want[i])
		}
	}
	if rot < 2 || int64(rot) != c.Stats().KeyRotations {
		t.Errorf("%d key hand-overs, %d key rotations in the session: want the same, at least 2", rot, c.Stats().KeyRotations)
	}
	// Traffic went through the peer under each key, never userspace.
	for id := range 8 {
		t.Logf("key %d: %d packets decrypted, %d dropped", id, pl.rxByKey[id].Load(), pl.rxDropped[id].Load())
	}
	// (The newest key may have seen nothing yet: the server switches to
	// it 5 s after the renegotiation.)
	for id := 0; id < rot; id++ {
		if pl.rxByKey[id].Load() == 0 {
			t.Errorf("no packet decrypted with key %d", id)
		}
	}
	if u := c.userStats(); u.TunPacketsIn != 0 || u.TunPacketsOut != 0 {
		t.Errorf("userspace moved tunnel packets (%d in, %d out) although offloaded", u.TunPacketsIn, u.TunPacketsOut)
	}
	// Statistics come from the peer: while it ran and after it went.
	ps, _ := pl.Stats()
	got := c.Stats()
	if got.TunPacketsOut != ps.VPNRxPackets || got.TunPacketsIn != ps.VPNTxPackets || got.TunBytesOut != ps.VPNRxBytes || got.TunBytesIn != ps.VPNTxBytes {
		t.Errorf("session tunnel counters %+v, peer's %+v", got, ps)
	}
	u := c.userStats()
	if got.BytesIn != u.BytesIn+ps.LinkRxBytes || got.PacketsOut != u.PacketsOut+ps.LinkTxPackets {
		t.Errorf("session link counters %+v, userspace control %+v + peer %+v", got, u, ps)
	}
	if live.TunPacketsOut < 120 || live.TunPacketsIn < 120 {
		t.Errorf("while connected the session counted %d/%d tunnel packets in/out, want at least the 120 pings answered", live.TunPacketsIn, live.TunPacketsOut)
	}
}

// TestIntegrationDCOFallsBackForTCP: a connection DCO cannot carry here
// (TCP) runs in userspace on the TUN device, and says why.
func TestIntegrationDCOFallsBackForTCP(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: testbed.ProtoTCP})
	fk := &fakeKernel{dial: nsDial(pair.ClientNS), tun: failingTun{t}}
	c, _, ctx, stop := runClient(t, pair, srv.Profile(), func(cfg *Config) {
		cfg.DCO = fk
		cfg.Dial = fk.Dial
	})
	off, why := c.DataPath()
	if off || !strings.Contains(why, "TCP") {
		t.Errorf("DataPath() = %v, %q; want not offloaded because of TCP", off, why)
	}
	if err := testbed.PingLoss(ctx, pair.ClientNS, testbed.TunnelServer4, 5, 0); err != nil {
		t.Errorf("through the TUN fallback: %v", err)
	}
	stop()
	if calls := fk.log(); len(calls) != 0 {
		t.Errorf("DCO used for a TCP connection: %q", calls)
	}
	if c.userStats().TunPacketsOut < 5 {
		t.Errorf("userspace wrote %d packets to TUN, want the 5 ping answers", c.userStats().TunPacketsOut)
	}
}

// failingTun is the TUN provider of a path that must not open one.
type failingTun struct{ t *testing.T }

func (f failingTun) OpenTun(context.Context, netconf.Config) (TunDevice, error) {
	f.t.Errorf("a TUN device was opened")
	return nil, errors.New("no TUN device in this test")
}
