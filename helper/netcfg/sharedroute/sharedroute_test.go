package sharedroute

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
)

// lan gives the namespace an "eth0" (a dummy link) on 10.1.0.2/24 with a
// default route via 10.1.0.1, and a "tun0" link standing for a tunnel
// that redirects the default route (0/1 + 128/1).
func lan(t *testing.T, ns *nstest.Namespace) (eth, tun netlink.Link) {
	t.Helper()
	nlh := ns.Netlink
	for _, name := range []string{"eth0", "tun0"} {
		// veth pairs: this kernel may lack the dummy driver.
		if err := nlh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{name, name + "p"} {
			l, _ := nlh.LinkByName(n)
			if err := nlh.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	eth, _ = nlh.LinkByName("eth0")
	tun, _ = nlh.LinkByName("tun0")
	must(t, nlh.AddrAdd(eth, &netlink.Addr{IPNet: sysrec.IPNet(netip.MustParsePrefix("10.1.0.2/24"))}))
	must(t, nlh.AddrAdd(tun, &netlink.Addr{IPNet: sysrec.IPNet(netip.MustParsePrefix("10.8.0.2/24"))}))
	must(t, nlh.RouteAdd(&netlink.Route{Dst: sysrec.IPNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: net.ParseIP("10.1.0.1"), LinkIndex: eth.Attrs().Index}))
	for _, p := range []string{"0.0.0.0/1", "128.0.0.0/1"} {
		must(t, nlh.RouteAdd(&netlink.Route{Dst: sysrec.IPNet(netip.MustParsePrefix(p)), LinkIndex: tun.Attrs().Index, Scope: netlink.SCOPE_LINK}))
	}
	return eth, tun
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// routesTo lists the main-table routes whose destination is exactly p.
func routesTo(t *testing.T, nlh *netlink.Handle, p string) []netlink.Route {
	t.Helper()
	pfx := netip.MustParsePrefix(p)
	fam := netlink.FAMILY_V4
	if pfx.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	all, err := nlh.RouteListFiltered(fam, &netlink.Route{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []netlink.Route
	for _, r := range all {
		if r.Dst != nil && sysrec.Prefix(r.Dst) == pfx {
			out = append(out, r)
		}
	}
	return out
}

func newTable(t *testing.T, ns *nstest.Namespace, dir string) *Table {
	t.Helper()
	st, err := journal.Open(dir)
	must(t, err)
	j, err := st.Create("shared-routes")
	must(t, err)
	tb, err := New(ns.Handle, j, nil)
	must(t, err)
	return tb
}

func TestPinFollowsDefaultRouteAndIsShared(t *testing.T) {
	ns := nstest.New(t, "srpin")
	eth, tun := lan(t, ns)
	tb := newTable(t, ns, t.TempDir())
	t.Cleanup(func() { _ = tb.Close() })
	must(t, tb.Start())
	tb.SetTunnel("a", tun.Attrs().Index)
	server := Spec{Kind: Pin, Prefix: netip.MustParsePrefix("192.0.2.10/32")}
	must(t, tb.Acquire("a", []Spec{server}))
	must(t, tb.Acquire("b", []Spec{server}))

	rs := routesTo(t, ns.Netlink, "192.0.2.10/32")
	if len(rs) != 1 || !rs[0].Gw.Equal(net.ParseIP("10.1.0.1")) || rs[0].LinkIndex != eth.Attrs().Index {
		t.Fatalf("pinned route = %v, want via 10.1.0.1 dev eth0 (not through the tunnel)", rs)
	}

	// The default gateway changes: the pinned route follows it.
	must(t, ns.Netlink.RouteReplace(&netlink.Route{Dst: sysrec.IPNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: net.ParseIP("10.1.0.254"), LinkIndex: eth.Attrs().Index}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs = routesTo(t, ns.Netlink, "192.0.2.10/32")
		if len(rs) == 1 && rs[0].Gw.Equal(net.ParseIP("10.1.0.254")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pinned route did not follow the new default gateway: %v", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// One owner leaving keeps it; the last one removes it.
	must(t, tb.Release("a"))
	if rs = routesTo(t, ns.Netlink, "192.0.2.10/32"); len(rs) != 1 {
		t.Fatalf("route gone while b still holds it: %v", rs)
	}
	must(t, tb.Release("b"))
	if rs = routesTo(t, ns.Netlink, "192.0.2.10/32"); len(rs) != 0 {
		t.Fatalf("route left after the last owner released it: %v", rs)
	}
}

func TestUnreachableSharedAndForeignRouteKept(t *testing.T) {
	ns := nstest.New(t, "srunr")
	lan(t, ns)
	// Somebody else's route to the same destination: never removed by us.
	must(t, ns.Netlink.RouteAdd(&netlink.Route{Dst: sysrec.IPNet(netip.MustParsePrefix("203.0.113.0/24")), Type: unix.RTN_BLACKHOLE}))
	tb := newTable(t, ns, t.TempDir())
	t.Cleanup(func() { _ = tb.Close() })
	block := []Spec{
		{Kind: Unreachable, Prefix: netip.MustParsePrefix("::/1"), Metric: 1 << 20},
		{Kind: Unreachable, Prefix: netip.MustParsePrefix("8000::/1"), Metric: 1 << 20},
	}
	must(t, tb.Acquire("a", block))
	must(t, tb.Acquire("b", block))
	if rs := routesTo(t, ns.Netlink, "::/1"); len(rs) != 1 || rs[0].Type != unix.RTN_UNREACHABLE {
		t.Fatalf("::/1 = %v, want one unreachable route", rs)
	}
	must(t, tb.Release("b"))
	if rs := routesTo(t, ns.Netlink, "8000::/1"); len(rs) != 1 {
		t.Fatalf("8000::/1 gone while a holds it: %v", rs)
	}
	must(t, tb.Release("a"))
	if rs := routesTo(t, ns.Netlink, "::/1"); len(rs) != 0 {
		t.Fatalf("::/1 left: %v", rs)
	}
	if rs := routesTo(t, ns.Netlink, "203.0.113.0/24"); len(rs) != 1 {
		t.Fatalf("foreign route touched: %v", rs)
	}
}

// A helper that dies with shared routes installed leaves them in the
// journal; the next start's recovery removes them and nothing else.
func TestJournalRecoversAfterCrash(t *testing.T) {
	ns := nstest.New(t, "srjrn")
	lan(t, ns)
	dir := filepath.Join(t.TempDir(), "journal")
	tb := newTable(t, ns, dir)
	must(t, tb.Acquire("a", []Spec{
		{Kind: Pin, Prefix: netip.MustParsePrefix("192.0.2.10/32")},
		{Kind: Unreachable, Prefix: netip.MustParsePrefix("8000::/1"), Metric: 7},
	}))
	if n := len(routesTo(t, ns.Netlink, "192.0.2.10/32")) + len(routesTo(t, ns.Netlink, "8000::/1")); n != 2 {
		t.Fatalf("%d routes installed, want 2", n)
	}
	// "Crash": the table is dropped without Close. Release its handles so
	// the namespace can go; the routes and the journal stay.
	tb.nlh.Close()
	tb.ns.Close()

	st, err := journal.Open(dir)
	must(t, err)
	var u journal.Undoers
	sysrec.Register(&u, func() (*netlink.Handle, error) { return ns.Netlink, nil })
	if err := st.Recover(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	if n := len(routesTo(t, ns.Netlink, "192.0.2.10/32")) + len(routesTo(t, ns.Netlink, "8000::/1")); n != 0 {
		t.Fatalf("%d routes left after recovery", n)
	}
	if rs := routesTo(t, ns.Netlink, "0.0.0.0/1"); len(rs) != 1 {
		t.Fatalf("recovery touched routes that were not journalled: %v", rs)
	}
	if left, _ := st.Pending(); len(left) != 0 {
		t.Fatalf("journal left: %+v", left)
	}
	if _, err := st.Create("shared-routes"); err != nil {
		t.Fatalf("a new journal after recovery: %v", err)
	}
}
