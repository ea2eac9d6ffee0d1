package backend

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco/dcotest"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// dcoRig is netcfg, in the client namespace of a test-bed pair, with a
// stand-in for the ovpn module, and a backend talking to it over a
// private bus.
type dcoRig struct {
	pair   *testbed.Pair
	nl     *netlink.Handle
	kernel *dcotest.Kernel
	b      *Backend
}

func newDCORig(t *testing.T) *dcoRig {
	t.Helper()
	pair, h, nl := clientNamespace(t)
	bus := busobjtest.StartBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nsrv, err := busobj.Connect(ctx, bus, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsrv.Close() })
	kernel := &dcotest.Kernel{Links: nl}
	svc := netcfg.NewService(logger)
	svc.SetNetNS(h)
	svc.SetDCOKernel(func(netns.NsHandle) (netcfg.DCOKernel, error) { return kernel, nil })
	if err := svc.Export(nsrv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() }) // before nsrv.Close
	if err := nsrv.RequestName(api.ServiceNetCfg); err != nil {
		t.Fatal(err)
	}
	bsrv, err := busobj.Connect(ctx, bus, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bsrv.Close() })
	b := &Backend{srv: bsrv, token: "dcoplane", log: logger, opts: Options{Logger: logger}}
	return &dcoRig{pair: pair, nl: nl, kernel: kernel, b: b}
}

// The backend's DCO plane: NewPeer creates the ovpn device through netcfg
// (EnableDCO, NewPeer with the socket, Establish configuring the device),
// keys, keepalive, swap and delete go through the <device>/dco object in
// the kernel's form, the counters come back under the engine's names, and
// Close removes the device.
func TestDCOPlaneOverDBus(t *testing.T) {
	r := newDCORig(t)
	b, nl, kernel := r.b, r.nl, r.kernel
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	uc, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1194})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	cfg := netconf.Config{Addresses: []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24")},
		Gateway4: netip.MustParseAddr("10.8.0.1"),
		Routes:   []netconf.Route{{Prefix: netip.MustParsePrefix("192.168.77.0/24")}}}
	plane, err := dcoProvider{b}.NewPeer(ctx, engine.DCOPeer{PeerID: 9, Conn: uc,
		Remote: netip.MustParseAddrPort("127.0.0.1:1194"), Net: cfg})
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	dev, name := b.dcoDev, b.deviceName
	b.mu.Unlock()
	if dev == nil || name != dcoDeviceName() {
		t.Fatalf("backend device %q (%v), want the DCO device %q", name, dev, dcoDeviceName())
	}
	link, err := nl.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, _ := nl.AddrList(link, netlink.FAMILY_V4); len(addrs) != 1 || addrs[0].IPNet.String() != "10.8.0.2/24" {
		t.Errorf("the ovpn device's addresses: %v, want 10.8.0.2/24", addrs)
	}

	key := func(id uint8, fill byte) *engine.DataKey {
		return &engine.DataKey{PeerID: 9, KeyID: id, Cipher: "AES-256-GCM",
			Encrypt: engine.KeyDirection{CipherKey: bytes.Repeat([]byte{fill}, 32), NonceTail: bytes.Repeat([]byte{fill + 1}, 8)},
			Decrypt: engine.KeyDirection{CipherKey: bytes.Repeat([]byte{fill + 2}, 32), NonceTail: bytes.Repeat([]byte{fill + 3}, 8)}}
	}
	steps := []func() error{
		func() error { return plane.InstallKey(engine.SlotPrimary, key(0, 0x10)) },
		func() error { return plane.SetKeepalive(1500*time.Millisecond, 60*time.Second) },
		func() error { return plane.InstallKey(engine.SlotSecondary, key(1, 0x20)) },
		func() error { return plane.SwapKeys() },
		func() error { return plane.DeleteKey(engine.SlotSecondary) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := plane.InstallKey(engine.SlotPrimary, &engine.DataKey{PeerID: 9, Cipher: "AES-256-CBC"}); err == nil ||
		!strings.Contains(err.Error(), "AES-256-CBC") {
		t.Errorf("a CBC key for the kernel: %v, want refused naming the cipher", err)
	}
	st, err := plane.Stats()
	want := engine.PlaneStats{LinkRxBytes: 500, LinkTxBytes: 600, VPNRxPackets: 3, VPNTxPackets: 4}
	if err != nil || st != want {
		t.Errorf("Stats: %+v, %v; want %+v", st, err, want)
	}
	if err := plane.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := plane.Stats(); err != nil || st != want {
		t.Errorf("Stats after Close: %+v, %v; want the final %+v", st, err, want)
	}
	if _, err := nl.LinkByName(name); err == nil {
		t.Error("the ovpn device outlived Close")
	}
	b.mu.Lock()
	left := b.dcoDev
	b.mu.Unlock()
	if left != nil {
		t.Error("the backend still holds the closed DCO device")
	}

	ifx := strings.Fields(kernel.Calls()[1])[1]
	wantCalls := []string{
		"create " + name,
		"new-peer " + ifx + " id=9 remote=127.0.0.1:1194 vpn4=10.8.0.1 vpn6=invalid IP",
		"new-key " + ifx + " peer=9 slot=0 key=0 alg=1",
		"keepalive " + ifx + " id=9 2/60",
		"new-key " + ifx + " peer=9 slot=1 key=1 alg=1",
		"swap " + ifx + " id=9",
		"del-key " + ifx + " id=9 slot=1",
		"stats " + ifx + " id=9",
		"stats " + ifx + " id=9",
		"delete-device " + ifx,
	}
	if got := kernel.Calls(); strings.Join(got, "\n") != strings.Join(wantCalls, "\n") {
		t.Errorf("kernel calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantCalls, "\n"))
	}
	if keys := kernel.Keys(); len(keys) == 2 {
		k := keys[1]
		if !bytes.Equal(k.Encrypt.Key, bytes.Repeat([]byte{0x20}, 32)) || k.Encrypt.NonceTail != [8]byte(bytes.Repeat([]byte{0x21}, 8)) ||
			!bytes.Equal(k.Decrypt.Key, bytes.Repeat([]byte{0x22}, 32)) || k.Decrypt.NonceTail != [8]byte(bytes.Repeat([]byte{0x23}, 8)) {
			t.Errorf("the second key reached the kernel changed: %+v", k)
		}
	}
}

// stateEvents passes the engine's states to the backend (which updates
// its dco property at CONNECTED) and to the test.
type stateEvents struct {
	b  *Backend
	ch chan engine.State
}

func (e stateEvents) State(s engine.State, detail string) {
	events{e.b}.State(s, detail)
	select {
	case e.ch <- s:
	default:
	}
}

type noTun struct{ t *testing.T }

func (n noTun) OpenTun(context.Context, netconf.Config) (engine.TunDevice, error) {
	n.t.Error("the engine asked for a TUN device although the data channel was offloaded")
	return nil, errors.New("no TUN in this test")
}

// The backend's DCO path as a session takes it: asked for DCO, with a
// netcfg whose kernel offers it, the backend hands the engine its plane;
// connected to the real OpenVPN 2.6 server, the engine creates the peer
// and installs the key through netcfg's /dco object, the server's
// renegotiation (reneg-sec 10) installs the next key in the secondary
// slot, swaps and deletes the lame duck after tran-window, the dco
// property reads true, and the end deletes the device.
func TestDCOEngineOverDBus(t *testing.T) {
	r := newDCORig(t)
	srv := testbed.ServerWith(t, r.pair, testbed.VariantA, testbed.ServerOptions{Proto: testbed.ProtoUDP, Extra: []string{"reneg-sec 10"}})
	prof, err := profile.Parse(srv.Profile() + "tran-window 3\n")
	if err != nil {
		t.Fatal(err)
	}
	b := r.b
	b.prof, b.dco = prof, true
	plane := b.chooseDataPath()
	if plane == nil {
		t.Fatal("the backend did not give the engine DCO although netcfg offers it")
	}
	states := make(chan engine.State, 64)
	c, err := engine.New(engine.Config{Profile: prof, DCO: plane, Tun: noTun{t}, Events: stateEvents{b, states},
		Logger: b.log, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			var c net.Conn
			err := testbed.InNamespace(r.pair.ClientNS, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, address)
				return err
			})
			return c, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	hang := time.After(60 * time.Second) // a hang guard, not a speed check
	for connected := false; !connected; {
		select {
		case s := <-states:
			connected = s == engine.StateConnected
		case <-hang:
			t.Fatal("not connected")
		}
	}
	if off, why := c.DataPath(); !off {
		t.Fatalf("not offloaded: %s", why)
	}
	b.mu.Lock()
	dcoProp := b.dco
	b.mu.Unlock()
	if !dcoProp {
		t.Error("dco reads false on an offloaded connection")
	}
	// The renegotiation: a second key, the swap, the lame duck's end.
	for !slices.ContainsFunc(r.kernel.Calls(), func(s string) bool { return strings.HasPrefix(s, "del-key") }) {
		select {
		case s := <-states:
			if s != engine.StateConnected {
				t.Fatalf("state %v during the renegotiation", s)
			}
		case <-hang:
			t.Fatalf("no renegotiation; kernel calls:\n%s", strings.Join(r.kernel.Calls(), "\n"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil // for the deferred wait
	b.closeTun()

	var kinds []string
	for _, call := range r.kernel.Calls() {
		kinds = append(kinds, strings.Join(strings.Fields(call)[:1], ""))
	}
	got := strings.Join(slices.Compact(kinds), " ")
	// (new-key twice: the keys are checked below; stats: the final
	// counters, read before the device goes.)
	if want := "create new-peer keepalive new-key swap del-key stats delete-device"; got != want {
		t.Errorf("kernel calls (kinds) %q, want %q:\n%s", got, want, strings.Join(r.kernel.Calls(), "\n"))
	}
	keys := r.kernel.Keys()
	if len(keys) < 2 || keys[0].Slot != 0 || keys[1].Slot != 1 || keys[0].KeyID == keys[1].KeyID || keys[0].PeerID != keys[1].PeerID {
		t.Errorf("keys: %+v, want the first in the primary slot and the renegotiated one (another key_id, same peer) in the secondary", keys)
	}
	if _, err := r.nl.LinkByName(dcoDeviceName()); err == nil {
		t.Error("the ovpn device outlived the connection")
	}
}

// A TUN device prepared at registration, before the Connect chose DCO,
// is removed when the Connect chooses it.
func TestDCOChosenDropsEarlyTun(t *testing.T) {
	r := newDCORig(t)
	b := r.b
	prof, err := profile.Parse("client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n")
	if err != nil {
		t.Fatal(err)
	}
	b.prof, b.dco = prof, true
	b.prepareTun()
	waitTunLinks(t, r.nl, 1)
	if b.dataPath() == nil {
		t.Fatal("the backend did not choose DCO although netcfg offers it")
	}
	waitTunLinks(t, r.nl, 0)
}
