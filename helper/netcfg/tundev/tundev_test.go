package tundev

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

func mp(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ma(s string) netip.Addr   { return netip.MustParseAddr(s) }

// withUplink gives ns a veth link with 10.99.0.1/24 and fd99::1/64 and
// default routes via .254 / fd99::fe, standing in for the LAN.
func withUplink(t *testing.T, ns *nstest.Namespace) {
	ns.IP(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	// No link-local addresses: their fe80::/64 routes would appear some
	// time after the links come up, racing the tests' route snapshots.
	ns.IP(t, "link", "set", "up0", "addrgenmode", "none")
	ns.IP(t, "link", "set", "up1", "addrgenmode", "none")
	ns.IP(t, "link", "set", "up1", "up")
	ns.IP(t, "addr", "add", "10.99.0.1/24", "dev", "up0")
	ns.IP(t, "-6", "addr", "add", "fd99::1/64", "dev", "up0", "nodad")
	ns.IP(t, "link", "set", "up0", "up")
	ns.IP(t, "route", "add", "default", "via", "10.99.0.254")
	ns.IP(t, "-6", "route", "add", "default", "via", "fd99::fe")
}

func setup(t *testing.T, ns *nstest.Namespace, cfg netconf.Config, opts Options) *Device {
	t.Helper()
	opts.NetNS = ns.Handle
	d, err := Setup(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = d.Teardown() })
	return d
}

func tunLinks(t *testing.T, ns *nstest.Namespace) []string {
	t.Helper()
	links, err := ns.Netlink.LinkList()
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

type routeKey struct {
	dst, gw string
	dev     int
}

func routes(t *testing.T, ns *nstest.Namespace) map[routeKey]bool {
	t.Helper()
	out := map[routeKey]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := ns.Netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			k := routeKey{dst: "0.0.0.0/0", dev: r.LinkIndex}
			if r.Dst != nil {
				k.dst = netPrefix(r.Dst).String()
			} else if fam == netlink.FAMILY_V6 {
				k.dst = "::/0"
			}
			if r.Gw != nil {
				k.gw = r.Gw.String()
			}
			out[k] = true
		}
	}
	return out
}

func addrs(t *testing.T, ns *nstest.Namespace, index int) map[string]string {
	t.Helper()
	link, err := ns.Netlink.LinkByIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	as, err := ns.Netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{} // address -> peer
	for _, a := range as {
		peer := ""
		if a.Peer != nil {
			peer = netPrefix(a.Peer).String()
		}
		out[netPrefix(a.IPNet).String()] = peer
	}
	return out
}

func wantNothingLeft(t *testing.T, ns *nstest.Namespace, before map[routeKey]bool) {
	t.Helper()
	if l := tunLinks(t, ns); len(l) != 0 {
		t.Errorf("TUN devices left behind: %v", l)
	}
	after := routes(t, ns)
	for k := range after {
		if !before[k] {
			t.Errorf("route left behind: %+v", k)
		}
	}
}

func TestSubnetSetupAndTeardown(t *testing.T) {
	ns := nstest.New(t, "tdsub")
	before := routes(t, ns)
	cfg := netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.2/24"), mp("fd00:8::1000/64")},
		Gateway4:  ma("10.8.0.1"),
		Routes: []netconf.Route{
			{Prefix: mp("192.168.50.0/24")},                        // via route-gateway
			{Prefix: mp("192.168.60.0/24"), Metric: 77},            // with metric
			{Prefix: mp("172.20.0.0/16"), Gateway: ma("10.8.0.9")}, // own gateway
			{Prefix: mp("fd00:99::/48")},
		},
		MTU: 1400,
	}
	d := setup(t, ns, cfg, Options{Name: "tsub%d", TxQueueLen: 321})
	if !strings.HasPrefix(d.Name(), "tsub") || strings.Contains(d.Name(), "%") {
		t.Errorf("device name %q: want the kernel to complete tsub%%d", d.Name())
	}
	link, err := ns.Netlink.LinkByName(d.Name())
	if err != nil {
		t.Fatalf("device %s not in the namespace: %v", d.Name(), err)
	}
	if a := link.Attrs(); a.MTU != 1400 || a.TxQLen != 321 || a.Flags&net.FlagUp == 0 || a.Index != d.Index() {
		t.Errorf("device attrs: mtu %d txqlen %d flags %v index %d (want 1400 321 up %d)", a.MTU, a.TxQLen, a.Flags, a.Index, d.Index())
	}
	got := addrs(t, ns, d.Index())
	for _, want := range []string{"10.8.0.2/24", "fd00:8::1000/64"} {
		if _, ok := got[want]; !ok {
			t.Errorf("address %s missing; have %v", want, got)
		}
	}
	rs := routes(t, ns)
	for _, k := range []routeKey{
		{"192.168.50.0/24", "10.8.0.1", d.Index()},
		{"192.168.60.0/24", "10.8.0.1", d.Index()},
		{"172.20.0.0/16", "10.8.0.9", d.Index()},
		{"fd00:99::/48", "", d.Index()},
	} {
		if !rs[k] {
			t.Errorf("route %+v missing; have %v", k, rs)
		}
	}
	if got := len(d.Routes()); got != 4 {
		t.Errorf("Routes() has %d entries, want 4: %v", got, d.Routes())
	}

	// The fd carries the device's packets: a datagram sent into the tunnel
	// from inside the namespace comes out of the fd.
	checkPacketOut(t, ns, d, "192.168.50.7:9")

	if err := d.Teardown(); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if err := d.Teardown(); err != nil {
		t.Fatalf("second Teardown: %v", err)
	}
	wantNothingLeft(t, ns, before)
	if d.File() != nil {
		t.Error("File() not nil after Teardown")
	}
}

// checkPacketOut sends a UDP datagram from inside ns to dst and expects to
// read it from the device's fd.
func checkPacketOut(t *testing.T, ns *nstest.Namespace, d *Device, dst string) {
	t.Helper()
	payload := []byte("through the tunnel")
	err := nsexec.Run(ns.Handle, func() error {
		c, err := net.Dial("udp", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("send into the tunnel: %v", err)
	}
	f := d.File()
	if err := f.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	for {
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("read from tun: %v", err)
		}
		// Skip router solicitations and the like; IPv4 UDP carries ours.
		if n > 28 && buf[0]>>4 == 4 && buf[9] == unix.IPPROTO_UDP && strings.HasSuffix(string(buf[:n]), string(payload)) {
			return
		}
	}
}

func TestNet30PeerAddress(t *testing.T) {
	ns := nstest.New(t, "tdn30")
	cfg := netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.6/30")},
		Peer4:     ma("10.8.0.5"),
		Gateway4:  ma("10.8.0.5"),
		Routes:    []netconf.Route{{Prefix: mp("10.8.0.1/32")}},
	}
	d := setup(t, ns, cfg, Options{Name: "tn30"})
	if d.Name() != "tn30" {
		t.Errorf("name %q, want tn30", d.Name())
	}
	got := addrs(t, ns, d.Index())
	// netlink reports the local side as a host address, the prefix on the peer.
	if peer, ok := got["10.8.0.6/32"]; !ok || peer != "10.8.0.5/30" {
		t.Errorf("addresses %v: want 10.8.0.6 with peer 10.8.0.5/30", got)
	}
	if rs := routes(t, ns); !rs[routeKey{"10.8.0.1/32", "10.8.0.5", d.Index()}] {
		t.Errorf("route 10.8.0.1/32 via 10.8.0.5 missing: %v", rs)
	}
	if err := d.Teardown(); err != nil {
		t.Fatal(err)
	}
	if l := tunLinks(t, ns); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestRedirectGateway(t *testing.T) {
	ns := nstest.New(t, "tdred")
	withUplink(t, ns)
	uplink, err := ns.Netlink.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	up := uplink.Attrs().Index
	before := routes(t, ns)
	cfg := netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24"), mp("fd00:8::2/64")},
		Gateway4:     ma("10.8.0.1"),
		Gateway6:     ma("fd00:8::1"),
		RedirectIPv4: true,
		RedirectIPv6: true,
		Remote:       ma("203.0.113.5"),
		Routes:       []netconf.Route{{Prefix: mp("198.51.100.0/24"), Exclude: true}},
	}
	d := setup(t, ns, cfg, Options{})
	if !strings.HasPrefix(d.Name(), "ovpn") {
		t.Errorf("default name %q does not follow %s", d.Name(), DefaultName)
	}
	rs := routes(t, ns)
	for _, k := range []routeKey{
		{"0.0.0.0/1", "10.8.0.1", d.Index()},
		{"128.0.0.0/1", "10.8.0.1", d.Index()},
		{"::/1", "fd00:8::1", d.Index()},
		{"8000::/1", "fd00:8::1", d.Index()},
		{"203.0.113.5/32", "10.99.0.254", up},
		{"198.51.100.0/24", "10.99.0.254", up},
		{"0.0.0.0/0", "10.99.0.254", up}, // the original default route stays
	} {
		if !rs[k] {
			t.Errorf("route %+v missing; have %v", k, rs)
		}
	}
	if err := d.Teardown(); err != nil {
		t.Fatal(err)
	}
	wantNothingLeft(t, ns, before)
}

func TestClosingFdRemovesDevice(t *testing.T) {
	ns := nstest.New(t, "tdfd")
	d := setup(t, ns, netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24")}}, Options{})
	if len(tunLinks(t, ns)) != 1 {
		t.Fatalf("no device after setup")
	}
	if err := d.CloseFile(); err != nil {
		t.Fatal(err)
	}
	waitNoTun(t, ns)
	// Teardown of a device that died on its own has nothing to complain about.
	if err := d.Teardown(); err != nil {
		t.Errorf("Teardown after the device died: %v", err)
	}
}

func waitNoTun(t *testing.T, ns *nstest.Namespace) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(tunLinks(t, ns)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("device still there after its fd was closed: %v", tunLinks(t, ns))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Another process holding the fd (the backend) keeps the device alive after
// netcfg closed its copy; when that copy goes, the device goes too, but the
// host route to the server does not, and Teardown removes it.
func TestHandedOverFd(t *testing.T) {
	ns := nstest.New(t, "tdho")
	withUplink(t, ns)
	before := routes(t, ns)
	cfg := netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24")},
		RedirectIPv4: true,
		Remote:       ma("203.0.113.5"),
	}
	d := setup(t, ns, cfg, Options{})
	other := mustDup(t, d.File())
	if err := d.CloseFile(); err != nil {
		t.Fatal(err)
	}
	if len(tunLinks(t, ns)) != 1 {
		t.Fatalf("device vanished although another fd holds it")
	}
	unix.Close(other)
	waitNoTun(t, ns)
	if !routes(t, ns)[routeKey{"203.0.113.5/32", "10.99.0.254", mustIndex(t, ns, "up0")}] {
		t.Fatalf("host route to the server missing before Teardown")
	}
	if err := d.Teardown(); err != nil {
		t.Errorf("Teardown: %v", err)
	}
	wantNothingLeft(t, ns, before)
}

// Teardown also deletes the device while another process holds its fd.
func TestTeardownWhileFdHeldElsewhere(t *testing.T) {
	ns := nstest.New(t, "tdhe")
	d := setup(t, ns, netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24")}}, Options{})
	f := os.NewFile(uintptr(mustDup(t, d.File())), "other")
	defer f.Close()
	if err := d.CloseFile(); err != nil {
		t.Fatal(err)
	}
	if err := d.Teardown(); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if l := tunLinks(t, ns); len(l) != 0 {
		t.Errorf("device still there: %v", l)
	}
}

func mustDup(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		t.Fatal(err)
	}
	if derr != nil {
		t.Fatal(derr)
	}
	return fd
}

func mustIndex(t *testing.T, ns *nstest.Namespace, name string) int {
	t.Helper()
	l, err := ns.Netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

// A step that fails half way undoes everything before it.
func TestFailedSetupLeavesNothing(t *testing.T) {
	ns := nstest.New(t, "tdfail")
	withUplink(t, ns)
	before := routes(t, ns)
	cfg := netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24")},
		RedirectIPv4: true,
		Remote:       ma("203.0.113.5"),
		Routes: []netconf.Route{
			{Prefix: mp("192.168.50.0/24")},
			// The gateway is not reachable through the device.
			{Prefix: mp("192.168.70.0/24"), Gateway: ma("192.0.2.1")},
		},
	}
	_, err := Setup(context.Background(), cfg, Options{NetNS: ns.Handle})
	if err == nil {
		t.Fatal("Setup succeeded with an unreachable gateway")
	}
	if !strings.Contains(err.Error(), "192.168.70.0/24") {
		t.Errorf("error %q does not name the route", err)
	}
	wantNothingLeft(t, ns, before)
}

func TestBadInput(t *testing.T) {
	ns := nstest.New(t, "tdbad")
	for _, tc := range []struct {
		name string
		cfg  netconf.Config
		opts Options
		want string
	}{
		{"long name", netconf.Config{}, Options{Name: "a-very-long-interface-name"}, "longer than"},
		{"mtu", netconf.Config{MTU: 100}, Options{}, "mtu"},
		{"family", netconf.Config{Routes: []netconf.Route{{Prefix: mp("10.0.0.0/8"), Gateway: ma("fd00::1")}}}, Options{}, "other address family"},
		{"taken name", netconf.Config{}, Options{Name: "lo"}, "TUNSETIFF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.NetNS = ns.Handle
			d, err := Setup(context.Background(), tc.cfg, tc.opts)
			if err == nil {
				d.Teardown()
				t.Fatal("Setup succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if l := tunLinks(t, ns); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	ns := nstest.New(t, "tdctx")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Setup(ctx, netconf.Config{}, Options{NetNS: ns.Handle})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if l := tunLinks(t, ns); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

// Create makes the device ahead of its configuration: it exists, down and
// without addresses, and the routes are as they were; Configure then
// brings it up as Setup would, and Teardown leaves nothing.
func TestCreateThenConfigure(t *testing.T) {
	ns := nstest.New(t, "tdcre")
	withUplink(t, ns)
	before := routes(t, ns)
	d, err := Create(context.Background(), Options{NetNS: ns.Handle}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Teardown() })
	link, err := ns.Netlink.LinkByName(d.Name())
	if err != nil {
		t.Fatalf("no device %q after Create: %v", d.Name(), err)
	}
	if link.Attrs().Flags&net.FlagUp != 0 || len(addrs(t, ns, d.Index())) != 0 {
		t.Errorf("created device is up (%v) or has addresses %v", link.Attrs().Flags, addrs(t, ns, d.Index()))
	}
	for k := range routes(t, ns) {
		if !before[k] {
			t.Errorf("route after Create: %+v", k)
		}
	}
	cfg := netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24")},
		RedirectIPv4: true,
		Remote:       ma("203.0.113.5"),
		MTU:          1400,
	}
	if err := d.Configure(context.Background(), cfg, 100); err != nil {
		t.Fatal(err)
	}
	link, err = ns.Netlink.LinkByIndex(d.Index())
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().MTU != 1400 || link.Attrs().TxQLen != 100 {
		t.Errorf("configured device: flags %v, mtu %d, txqueuelen %d", link.Attrs().Flags, link.Attrs().MTU, link.Attrs().TxQLen)
	}
	if _, ok := addrs(t, ns, d.Index())["10.8.0.2/24"]; !ok {
		t.Errorf("address missing: %v", addrs(t, ns, d.Index()))
	}
	rs := routes(t, ns)
	if !rs[routeKey{"0.0.0.0/1", "", d.Index()}] || !rs[routeKey{"203.0.113.5/32", "10.99.0.254", mustIndex(t, ns, "up0")}] {
		t.Errorf("redirect or server route missing: %v", rs)
	}
	if err := d.Configure(context.Background(), cfg, 0); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second Configure: %v", err)
	}
	if err := d.Teardown(); err != nil {
		t.Fatal(err)
	}
	wantNothingLeft(t, ns, before)
}

// A device created ahead and never configured (the tunnel failed, or was
// disconnected first) goes with Teardown, journal included; so does one
// whose configuration asks for another packet format (vnet_hdr) than it
// was created with, and one whose configuration fails.
func TestCreatedDeviceNeverConfigured(t *testing.T) {
	ns := nstest.New(t, "tdcrx")
	withUplink(t, ns)
	before := routes(t, ns)
	dir := t.TempDir()
	store, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *netconf.Config // nil: Teardown without Configure
		want string
	}{
		{"teardown", nil, ""},
		{"vnet_hdr", &netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24")}, VnetHdr: true}, "vnet_hdr"},
		{"gateway", &netconf.Config{Addresses: []netip.Prefix{mp("10.8.0.2/24")},
			Routes: []netconf.Route{{Prefix: mp("192.168.70.0/24"), Gateway: ma("192.0.2.1")}}}, "192.168.70.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, j := createJournalled(t, ns, store, "dev-"+tc.name[:4])
			if len(tunLinks(t, ns)) != 1 || len(j.Entries()) == 0 {
				t.Fatalf("after Create: devices %v, journal %v", tunLinks(t, ns), j.Entries())
			}
			if tc.cfg == nil {
				if err := d.Teardown(); err != nil {
					t.Fatal(err)
				}
			} else if err := d.Configure(context.Background(), *tc.cfg, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Configure: %v, want an error naming %q", err, tc.want)
			}
			wantNothingLeft(t, ns, before)
			if left, _ := filepath.Glob(filepath.Join(dir, "*.journal")); len(left) != 0 {
				t.Errorf("journal left: %v", left)
			}
		})
	}
	if _, err := Create(context.Background(), Options{NetNS: ns.Handle, Link: 1}, false); err == nil {
		t.Error("Create adopted a link")
	}
}

// On an adopted link (which outlives us) the addresses' and routes'
// journal entries are written while the shared routes are taken
// (recordAllAsync): when that write fails, Configure fails naming the
// journal, and the shared route taken meanwhile goes with the setup.
func TestJournalFailureUndoesSharedRoutes(t *testing.T) {
	ns := nstest.New(t, "tdjfl")
	withUplink(t, ns)
	ns.IP(t, "link", "add", "adopt0", "type", "veth", "peer", "name", "adopt1")
	link, err := ns.Netlink.LinkByName("adopt0")
	if err != nil {
		t.Fatal(err)
	}
	before := routes(t, ns)
	store, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j, err := store.Create("dev-jfail")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Remove(); err != nil { // every later write fails
		t.Fatal(err)
	}
	_, err = Setup(context.Background(), netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.2/24")}, Remote: ma("203.0.113.5"), RedirectIPv4: true,
	}, Options{NetNS: ns.Handle, Journal: j, Link: link.Attrs().Index})
	if err == nil || !strings.Contains(err.Error(), "journal") {
		t.Fatalf("Setup with a failing journal: %v", err)
	}
	wantNothingLeft(t, ns, before)
	if out := ns.IP(t, "addr", "show", "dev", "adopt0"); strings.Contains(out, "10.8.0.2") {
		t.Errorf("address left on the adopted link:\n%s", out)
	}
}

// The device journal of a TUN device we created holds its link alone: the
// link's undo removes the device, and the kernel its addresses and routes
// with it, so Configure writes nothing the addresses would wait for. On an
// adopted link, which outlives us, every address and route is journalled.
func TestJournalHoldsWhatOutlivesUs(t *testing.T) {
	ns := nstest.New(t, "tdjwo")
	withUplink(t, ns)
	store, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.2/24"), mp("fd00:8::2/64")}, Remote: ma("203.0.113.5"),
		RedirectIPv4: true, Routes: []netconf.Route{{Prefix: mp("192.168.50.0/24")}},
	}
	kinds := func(j *journal.Journal) map[string]int {
		n := map[string]int{}
		for _, e := range j.Entries() {
			n[e.Kind]++
		}
		return n
	}
	d, j := createJournalled(t, ns, store, "dev-own")
	if err := d.Configure(context.Background(), cfg, 0); err != nil {
		t.Fatal(err)
	}
	if got := kinds(j); got[sysrec.KindLink] != 1 || len(got) != 1 {
		t.Errorf("created device's journal: %v, want its link alone", got)
	}
	if len(d.Addresses()) != 2 {
		t.Errorf("addresses %v", d.Addresses())
	}

	ns.IP(t, "link", "add", "adopt0", "type", "veth", "peer", "name", "adopt1")
	link, err := ns.Netlink.LinkByName("adopt0")
	if err != nil {
		t.Fatal(err)
	}
	ja, err := store.Create("dev-adopted")
	if err != nil {
		t.Fatal(err)
	}
	da, err := Setup(context.Background(), cfg, Options{NetNS: ns.Handle, Journal: ja, Link: link.Attrs().Index, Owner: "adopted"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = da.Teardown() })
	// Two addresses; the pushed route and the redirect's two halves.
	if got := kinds(ja); got[sysrec.KindAddr] != 2 || got[sysrec.KindRoute] != 3 || got[sysrec.KindLink] != 0 {
		t.Errorf("adopted link's journal: %v, want 2 addresses and 3 routes", got)
	}
}

// createJournalled creates a device (not configured) journalling in a new
// journal of store; the test's end tears it down.
func createJournalled(t *testing.T, ns *nstest.Namespace, store *journal.Store, name string) (*Device, *journal.Journal) {
	t.Helper()
	j, err := store.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Create(context.Background(), Options{NetNS: ns.Handle, Journal: j}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Teardown() })
	return d, j
}
