package netcfg

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

type fixture struct {
	ns       *nstest.Namespace
	bus      string
	svc      *Service
	conn     *dbus.Conn // the "backend"'s connection
	client   *netcfgclient.Client
	baseline map[string]bool
}

// newFixture runs the service on a private bus, creating devices in a fresh
// namespace with an uplink and default routes, and connects a client.
func newFixture(t testing.TB, prefix string) *fixture {
	t.Helper()
	return newFixtureOn(t, prefix, "")
}

// newFixtureOn is newFixture on a given bus ("" starts one).
func newFixtureOn(t testing.TB, prefix, bus string) *fixture {
	t.Helper()
	ns := nstest.New(t, prefix)
	ns.IP(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	// No link-local addresses: their fe80::/64 routes would appear some
	// time after the links come up, after the baseline of the routes.
	ns.IP(t, "link", "set", "up0", "addrgenmode", "none")
	ns.IP(t, "link", "set", "up1", "addrgenmode", "none")
	ns.IP(t, "link", "set", "up1", "up")
	ns.IP(t, "addr", "add", "10.99.0.1/24", "dev", "up0")
	ns.IP(t, "link", "set", "up0", "up")
	ns.IP(t, "route", "add", "default", "via", "10.99.0.254")

	if bus == "" {
		bus = testbed.Bus(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := busobj.Connect(ctx, bus, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	svc := NewService(logger)
	svc.SetNetNS(ns.Handle)
	if err := svc.Export(srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() }) // runs before srv.Close
	if err := srv.RequestName(api.ServiceNetCfg); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, bus)
	f := &fixture{ns: ns, bus: bus, svc: svc, conn: conn, client: netcfgclient.NewClient(conn)}
	f.baseline = f.routes(t)
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func dial(t testing.TB, bus string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if !conn.SupportsUnixFDs() {
		t.Fatal("bus connection without unix fd passing")
	}
	return conn
}

func (f *fixture) routes(t testing.TB) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := f.ns.Netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out[r.String()] = true
		}
	}
	return out
}

func (f *fixture) tunLinks(t testing.TB) []string {
	t.Helper()
	links, err := f.ns.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if l.Type() == "tuntap" {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// waitClean waits until no TUN device, no extra route and no device object
// is left.
func (f *fixture) waitClean(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a hang guard, not a speed check
	for {
		var extra []string
		for r := range f.routes(t) {
			if !f.baseline[r] {
				extra = append(extra, r)
			}
		}
		f.svc.mu.Lock()
		objects := len(f.svc.devices)
		f.svc.mu.Unlock()
		links := f.tunLinks(t)
		if len(extra) == 0 && len(links) == 0 && objects == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: devices %v, routes %v, %d device objects", links, extra, objects)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mp(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ma(s string) netip.Addr   { return netip.MustParseAddr(s) }

var testCfg = netconf.Config{
	Addresses:    []netip.Prefix{mp("10.8.0.2/24"), mp("fd00:8::2/64")},
	Gateway4:     ma("10.8.0.1"),
	Gateway6:     ma("fd00:8::1"),
	Routes:       []netconf.Route{{Prefix: mp("192.168.50.0/24"), Metric: 20}, {Prefix: mp("fd00:99::/48")}, {Prefix: mp("198.51.100.0/24"), Exclude: true}},
	RedirectIPv4: true,
	MTU:          1420,
	DNS:          netconf.DNS{Servers: []netip.AddrPort{netip.AddrPortFrom(ma("10.8.0.1"), 0), netip.AddrPortFrom(ma("fd00:8::1"), 0)}, Search: []string{"vpn.example"}},
	Remote:       ma("203.0.113.5"),
}

func TestEstablishAndDestroy(t *testing.T) {
	f := newFixture(t, "ncest")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A subscriber sees the device appear.
	watcher := dial(t, f.bus)
	sigs := make(chan *dbus.Signal, 64)
	watcher.Signal(sigs)
	if err := watcher.Object(api.ServiceNetCfg, api.PathNetCfg).CallWithContext(ctx, api.InterfaceNetCfg+".NotificationSubscribe", 0, uint32(api.NetCfgAll)).Err; err != nil {
		t.Fatal(err)
	}

	tun, path, name, err := f.client.Establish(ctx, "tok1", testCfg)
	if err != nil {
		t.Fatalf("Establish: %v", err)
	}
	defer tun.Close()
	if want := api.PathNetCfg + "/" + dbus.ObjectPath(strconv.Itoa(os.Getpid())) + "_tok1"; path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	link, err := f.ns.Netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("device %s not found: %v", name, err)
	}
	if link.Attrs().MTU != 1420 {
		t.Errorf("mtu %d, want 1420", link.Attrs().MTU)
	}
	addrs, err := f.ns.Netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range addrs {
		have[a.IPNet.String()] = true
	}
	for _, want := range []string{"10.8.0.2/24", "fd00:8::2/64"} {
		if !have[want] {
			t.Errorf("address %s missing: %v", want, have)
		}
	}
	idx := link.Attrs().Index
	routes := f.routes(t)
	for _, want := range []netlink.Route{
		{Dst: ipnet("192.168.50.0/24"), Gw: ma("10.8.0.1").AsSlice(), LinkIndex: idx},
		{Dst: ipnet("0.0.0.0/1"), Gw: ma("10.8.0.1").AsSlice(), LinkIndex: idx},
		{Dst: ipnet("128.0.0.0/1"), Gw: ma("10.8.0.1").AsSlice(), LinkIndex: idx},
		{Dst: ipnet("fd00:99::/48"), Gw: ma("fd00:8::1").AsSlice(), LinkIndex: idx},
	} {
		if !hasRoute(t, f, want) {
			t.Errorf("route %v missing: %v", want, routes)
		}
	}
	up0, _ := f.ns.Netlink.LinkByName("up0")
	for _, dst := range []string{"203.0.113.5/32", "198.51.100.0/24"} {
		if !hasRoute(t, f, netlink.Route{Dst: ipnet(dst), Gw: ma("10.99.0.254").AsSlice(), LinkIndex: up0.Attrs().Index}) {
			t.Errorf("route %s via the uplink missing: %v", dst, routes)
		}
	}

	// The fd is the device: an ICMP echo request written to it is answered
	// by the kernel through it.
	pingThroughTun(t, tun)

	// Properties as stored.
	dev := f.conn.Object(api.ServiceNetCfg, path)
	checkProp(t, dev, "device_name", name)
	checkProp(t, dev, "mtu", uint16(1420))
	checkProp(t, dev, "reroute_ipv4", true)
	checkProp(t, dev, "dns_name_servers", []string{"10.8.0.1", "fd00:8::1"})
	checkProp(t, dev, "dns_search_domains", []string{"vpn.example"})
	checkProp(t, dev, "owner", uint32(os.Getuid()))

	waitSignal(t, sigs, api.NetCfgDeviceAdded, name)

	if err := f.client.Destroy(ctx, path); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	f.waitClean(t)
	waitSignal(t, sigs, api.NetCfgDeviceRemoved, name)
	if err := dev.CallWithContext(ctx, api.InterfaceNetCfg+".Establish", 0).Err; !api.IsErrorName(err, api.ErrNameUnknownMethod) {
		t.Errorf("Establish on a destroyed device: %v, want UnknownMethod (object gone)", err)
	}
}

func ipnet(s string) *net.IPNet {
	p := mp(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func hasRoute(t *testing.T, f *fixture, want netlink.Route) bool {
	t.Helper()
	fam := netlink.FAMILY_V4
	if want.Dst.IP.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	rs, err := f.ns.Netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst != nil && r.Dst.String() == want.Dst.String() && r.LinkIndex == want.LinkIndex && r.Gw.Equal(want.Gw) {
			return true
		}
	}
	return false
}

func checkProp(t *testing.T, obj dbus.BusObject, name string, want any) {
	t.Helper()
	v, err := obj.GetProperty(api.InterfaceNetCfg + "." + name)
	if err != nil {
		t.Errorf("property %s: %v", name, err)
		return
	}
	if got := v.Value(); !equalValue(got, want) {
		t.Errorf("property %s = %#v, want %#v", name, got, want)
	}
}

func equalValue(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return strings.Join(as, "\x00") == strings.Join(bs, "\x00")
	}
	return a == b
}

func waitSignal(t *testing.T, ch chan *dbus.Signal, typ api.NetCfgChangeType, dev string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.Name != api.InterfaceNetCfg+".NetworkChange" || len(s.Body) != 3 {
				continue
			}
			if s.Body[0] == uint32(typ) && s.Body[1] == dev {
				return
			}
		case <-timeout:
			t.Fatalf("no NetworkChange %v for %s", typ, dev)
		}
	}
}

// pingThroughTun writes an ICMP echo request from 10.8.0.1 to the local
// 10.8.0.2 into the TUN fd and reads the kernel's echo reply back.
func pingThroughTun(t *testing.T, tun *os.File) {
	t.Helper()
	pkt := icmpEcho(ma("10.8.0.1"), ma("10.8.0.2"), 0x4242, []byte("ovpn3go netcfg"))
	if _, err := tun.Write(pkt); err != nil {
		t.Fatalf("write to tun: %v", err)
	}
	if err := tun.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	for {
		n, err := tun.Read(buf)
		if err != nil {
			t.Fatalf("no echo reply from the tun: %v", err)
		}
		p := buf[:n]
		if n >= 28 && p[0]>>4 == 4 && p[9] == 1 && p[20] == 0 && binary.BigEndian.Uint16(p[24:]) == 0x4242 {
			return
		}
	}
}

func icmpEcho(src, dst netip.Addr, id uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = 1 // ICMP
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	p[20] = 8 // echo request
	binary.BigEndian.PutUint16(p[24:], id)
	binary.BigEndian.PutUint16(p[26:], 1)
	copy(p[28:], payload)
	binary.BigEndian.PutUint16(p[22:], checksum(p[20:]))
	return p
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// A backend that dies: its bus connection closes, and the service removes
// its device, the host route and the device object.
func TestCreatorLeavesBus(t *testing.T) {
	f := newFixture(t, "ncdie")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tun, _, _, err := f.client.Establish(ctx, "tok2", testCfg)
	if err != nil {
		t.Fatalf("Establish: %v", err)
	}
	defer tun.Close() // the device goes although we still hold the fd
	if len(f.tunLinks(t)) != 1 {
		t.Fatal("no device after Establish")
	}
	f.conn.Close()
	f.waitClean(t)
}

func TestCleanupPID(t *testing.T) {
	f := newFixture(t, "ncpid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, label := range []string{"a", "b"} {
		tun, _, _, err := f.client.Establish(ctx, label, testCfg)
		if err != nil {
			t.Fatalf("Establish %s: %v", label, err)
		}
		tun.Close() // a backend that died: its fd is gone, host routes are not
	}
	f.svc.CleanupPID(uint32(os.Getpid()))
	f.waitClean(t)
}

func TestManagerCleanupAndList(t *testing.T) {
	f := newFixture(t, "nccln")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tun, path, name, err := f.client.Establish(ctx, "tok3", netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.6/30")}, Peer4: ma("10.8.0.5")})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	// net30 arrives as a point-to-point address.
	link, err := f.ns.Netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := f.ns.Netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].Peer == nil || addrs[0].Peer.String() != "10.8.0.5/30" || !addrs[0].IP.Equal(ma("10.8.0.6").AsSlice()) {
		t.Errorf("addresses %v (%v), want 10.8.0.6 peer 10.8.0.5/30", addrs, err)
	}
	var paths []dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).CallWithContext(ctx, api.InterfaceNetCfg+".FetchInterfaceList", 0).Store(&paths); err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0] != path {
		t.Errorf("FetchInterfaceList = %v, want [%s]", paths, path)
	}
	var dco bool
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).CallWithContext(ctx, api.InterfaceNetCfg+".DcoAvailable", 0).Store(&dco); err != nil || dco {
		t.Errorf("DcoAvailable = %v, %v; want false", dco, err)
	}
	if err := f.client.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
}

func TestBadInputErrors(t *testing.T) {
	f := newFixture(t, "ncbad")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mgr := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg)
	err := mgr.CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, "bad/name").Err
	wantNetcfgError(t, err, "Error creating virtual interface 'bad/name'")

	var path dbus.ObjectPath
	if err := mgr.CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, "tok4").Store(&path); err != nil {
		t.Fatal(err)
	}
	dev := f.conn.Object(api.ServiceNetCfg, path)
	call := func(m string, args ...any) error {
		return dev.CallWithContext(ctx, api.InterfaceNetCfg+"."+m, 0, args...).Err
	}
	wantNetcfgError(t, call("SetDNSSEC", "maybe"), "[SetDNSSEC] Invalid DNSSEC mode: 'maybe'")
	wantNetcfgError(t, call("SetDNSTransport", "carrier-pigeon"), "[SetDNSTransport] Invalid DNS transport mode: 'carrier-pigeon'")
	wantNetcfgError(t, call("AddIPAddress", "10.8.0.300", uint32(24), "", false), "invalid IP address '10.8.0.300'")
	wantNetcfgError(t, call("AddIPAddress", "10.8.0.2", uint32(24), "", true), "is not IPv6")
	wantNetcfgError(t, call("AddIPAddress", "10.8.0.2", uint32(33), "", false), "Invalid prefix size 33")
	type nw struct {
		A string
		P uint32
		M int32
		V bool
		E bool
	}
	wantNetcfgError(t, call("AddNetworks", []nw{{"fd00::", 129, -1, true, false}}), "invalid prefix size 129")
	wantNetcfgError(t, call("AddDNS", []string{"not-an-ip"}), "Invalid DNS server address 'not-an-ip'")
	if err := call("SetDNSSEC", "optional"); err != nil {
		t.Errorf("SetDNSSEC(optional): %v", err)
	}
	checkProp(t, dev, "dnssec_mode", "optional")
	err = dev.SetProperty(api.InterfaceNetCfg+".dns_scope", dbus.MakeVariant("planet"))
	if !api.IsErrorName(err, api.ErrNameFailed) || !strings.Contains(api.ErrorText(err), "[SetDNSScope] Invalid DNS Scope value: planet") {
		t.Errorf("dns_scope=planet: %v", err)
	}
	if err := dev.SetProperty(api.InterfaceNetCfg+".layer", dbus.MakeVariant(uint32(2))); err == nil {
		t.Error("layer 2 accepted")
	}
	// Nothing was established, and nothing is left after Destroy.
	if err := call("Destroy"); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
}

func wantNetcfgError(t *testing.T, err error, text string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want %q", text)
		return
	}
	if !api.IsErrorName(err, api.ErrorName(api.DomainNetCfg)) || !strings.Contains(api.ErrorText(err), text) {
		t.Errorf("error %v, want domain %s with %q", err, api.DomainNetCfg, text)
	}
}

// Another user's process may not touch the device.
func TestOnlyCreatorConfigures(t *testing.T) {
	// This bus's socket is reachable by other users.
	f := newFixtureOn(t, "ncacl", busobjtest.StartBus(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var path dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, "tok5").Store(&path); err != nil {
		t.Fatal(err)
	}
	busctl := "busctl"
	if _, err := exec.LookPath(busctl); err != nil {
		t.Skip("busctl not installed")
	}
	// A stranger does not get past the bus policy; another process of
	// the backend user (another backend) gets to netcfg, which refuses.
	out, err := busobjtest.AsUser(t, 65534, f.bus, busctl, "--address="+f.bus, "call", api.ServiceNetCfg, string(path),
		api.InterfaceNetCfg, "Destroy").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Access denied") {
		t.Errorf("Destroy by nobody: err %v, output %s", err, out)
	}
	beUID, _ := testenv.EnsureBackendUser(t)
	out, err = busobjtest.AsUser(t, int(beUID), f.bus, busctl, "--address="+f.bus, "call", api.ServiceNetCfg, string(path),
		api.InterfaceNetCfg, "Destroy").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Authorization failed") {
		t.Errorf("Destroy by another backend: err %v, output %s", err, out)
	}
	f.svc.mu.Lock()
	_, still := f.svc.devices[path]
	f.svc.mu.Unlock()
	if !still {
		t.Error("device removed by another user")
	}
}

// Tun is what the backend hands the engine: Close removes the device and
// the object.
func TestOpenAndClose(t *testing.T) {
	f := newFixture(t, "ncopn")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tun, err := f.client.Open(ctx, "tok6", testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if tun.Name() == "" || !strings.HasSuffix(string(tun.Path()), "_tok6") {
		t.Errorf("name %q path %s", tun.Name(), tun.Path())
	}
	pingThroughTun(t, tun.File())
	// A second Establish under the same label replaces the first device.
	tun2, err := f.client.Open(ctx, "tok6", testCfg)
	if err != nil {
		t.Fatalf("re-Establish with the same label: %v", err)
	}
	if got := f.tunLinks(t); len(got) != 1 || got[0] != tun2.Name() {
		t.Errorf("devices after replacement: %v, want [%s]", got, tun2.Name())
	}
	tun.File().Close()
	if err := tun2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tun2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	f.waitClean(t)
}

// TestEstablishCalls: the client's Establish is CreateVirtualInterface and
// one EstablishWith carrying the settings (one round trip from the
// PUSH_REPLY to the configured device); the device's name comes with its
// file, not from a property read.
func TestEstablishCalls(t *testing.T) {
	f := newFixture(t, "nccal")
	mon, err := testbed.MonitorCalls(f.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tun, err := f.client.Open(ctx, "tok9", testCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	checkProp(t, f.conn.Object(api.ServiceNetCfg, tun.Path()), "device_name", tun.Name())
	if err := mon.Sync(ctx, f.conn); err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, c := range mon.Calls() {
		if c.Sender == f.conn.Names()[0] && c.Destination == api.ServiceNetCfg {
			members = append(members, c.Member)
		}
	}
	// One call describes and establishes the device; the last call is
	// this test's own device_name check.
	if want := []string{"CreateVirtualInterface", "EstablishWith", "Get"}; !slices.Equal(members, want) {
		t.Fatalf("calls %q, want %q", members, want)
	}
	// Describe carries no setting a new device has already (testCfg does
	// not reroute IPv6), and every other one.
	var names []string
	for _, c := range mon.Calls() {
		if c.Member != "EstablishWith" {
			continue
		}
		var list []describeSetting
		if err := dbus.Store(c.Body, &list); err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			names = append(names, s.Name)
		}
	}
	want := []string{"mtu", "SetRemoteAddress", "AddIPAddress", "AddIPAddress", "reroute_ipv4", "AddNetworks", "AddDNSSearch", "AddDNS"}
	if !slices.Equal(names, want) {
		t.Errorf("EstablishWith's settings %q, want %q", names, want)
	}
}
