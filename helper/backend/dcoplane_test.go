package backend

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
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
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// The backend's DCO path as the engine drives it: NewPeer creates the
// ovpn device through netcfg (EnableDCO, NewPeer with the socket,
// Establish configuring the device), keys, keepalive, swap and delete go
// through the <device>/dco object in the kernel's form, the counters come
// back under the engine's names, and Close removes the device. netcfg runs
// in a namespace of its own with a stand-in for the missing ovpn module.
func TestDCOPlaneOverDBus(t *testing.T) {
	pair := testbed.NetPair(t)
	h, err := netns.GetFromName(pair.ClientNS)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	bus := busobjtest.StartBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	nsrv, err := busobj.Connect(ctx, bus, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer nsrv.Close()
	kernel := &dcotest.Kernel{Links: nl}
	svc := netcfg.NewService(logger)
	svc.SetNetNS(h)
	svc.SetDCOKernel(func(netns.NsHandle) (netcfg.DCOKernel, error) { return kernel, nil })
	if err := svc.Export(nsrv); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := nsrv.RequestName(api.ServiceNetCfg); err != nil {
		t.Fatal(err)
	}
	bsrv, err := busobj.Connect(ctx, bus, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer bsrv.Close()
	b := &Backend{srv: bsrv, token: "dcoplane", log: logger, opts: Options{Logger: logger}}

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
