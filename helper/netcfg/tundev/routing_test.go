package tundev

import (
	"context"
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
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sharedroute"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// routeTo asks the kernel which way dst goes: the device name, or
// "unreachable".
func routeTo(t *testing.T, ns *nstest.Namespace, dst string) string {
	t.Helper()
	rs, err := ns.Netlink.RouteGet(ma(dst).AsSlice())
	if err != nil {
		if err == unix.ENETUNREACH || err == unix.EHOSTUNREACH {
			return "unreachable"
		}
		t.Fatalf("route get %s: %v", dst, err)
	}
	l, err := ns.Netlink.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Name
}

// block-ipv6 with an IPv4-only redirect: IPv6 beyond the LAN is
// unreachable, the LAN itself and IPv4 are not; a pushed route covering the
// server does not capture the server.
func TestBlockIPv6AndServerCoveredByRoute(t *testing.T) {
	ns := nstest.New(t, "tdblk")
	withUplink(t, ns)
	before := routes(t, ns)
	d := setup(t, ns, netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24")},
		RedirectIPv4: true,
		BlockIPv6:    true,
		Remote:       ma("203.0.113.5"),
		Routes:       []netconf.Route{{Prefix: mp("203.0.113.0/24")}}, // covers the server
	}, Options{})
	for dst, want := range map[string]string{
		"2001:db8::1": "unreachable",
		"fd99::77":    "up0", // the LAN
		"192.0.2.1":   d.Name(),
		"203.0.113.9": d.Name(),
		"203.0.113.5": "up0", // the server, outside the tunnel
		"10.99.0.254": "up0",
	} {
		if got := routeTo(t, ns, dst); got != want {
			t.Errorf("%s goes to %s, want %s", dst, got, want)
		}
	}
	if err := d.Teardown(); err != nil {
		t.Fatal(err)
	}
	wantNothingLeft(t, ns, before)
	if got := routeTo(t, ns, "2001:db8::1"); got != "up0" {
		t.Errorf("after teardown IPv6 goes to %s, want up0", got)
	}
}

// block-local routes the LAN into the tunnel except the gateway (and the
// server keeps its host route).
func TestBlockLocal(t *testing.T) {
	ns := nstest.New(t, "tdbl")
	withUplink(t, ns)
	d := setup(t, ns, netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24")},
		RedirectIPv4: true,
		BlockLocal:   true,
		Remote:       ma("10.99.0.77"),
	}, Options{})
	for dst, want := range map[string]string{
		"10.99.0.5":   d.Name(),
		"10.99.0.200": d.Name(),
		"10.99.0.254": "up0", // the gateway
		"10.99.0.77":  "up0", // the server
	} {
		if got := routeTo(t, ns, dst); got != want {
			t.Errorf("%s goes to %s, want %s", dst, got, want)
		}
	}
}

// Two devices that both redirect the gateway: the second stands behind the
// first; tearing down either leaves the other carrying the traffic, and
// the shared server route stays until both are gone.
func TestTwoRedirectingDevices(t *testing.T) {
	for _, firstDown := range []bool{true, false} {
		ns := nstest.New(t, "tdtwo")
		withUplink(t, ns)
		before := routes(t, ns)
		tbl, err := sharedroute.New(ns.Handle, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tbl.Close() })
		cfg := func(addr string) netconf.Config {
			return netconf.Config{
				Addresses:    []netip.Prefix{mp(addr), mp("fd00:8::2/64")},
				Gateway6:     ma("fd00:8::1"),
				RedirectIPv4: true, RedirectIPv6: true,
				Remote: ma("203.0.113.5"),
			}
		}
		a := setup(t, ns, cfg("10.8.0.2/24"), Options{Shared: tbl, Owner: "a"})
		b := setup(t, ns, cfg("10.9.0.2/24"), Options{Shared: tbl, Owner: "b"})
		if got := routeTo(t, ns, "192.0.2.1"); got != a.Name() {
			t.Fatalf("with both up, traffic goes to %s, want the first, %s", got, a.Name())
		}
		gone, stays := a, b
		if !firstDown {
			gone, stays = b, a
		}
		if err := gone.Teardown(); err != nil {
			t.Fatal(err)
		}
		for _, dst := range []string{"192.0.2.1", "2001:db8::1"} {
			if got := routeTo(t, ns, dst); got != stays.Name() {
				t.Errorf("after %s went, %s goes to %s, want %s", gone.Name(), dst, got, stays.Name())
			}
		}
		if got := routeTo(t, ns, "203.0.113.5"); got != "up0" {
			t.Errorf("server route lost with %s: goes to %s", gone.Name(), got)
		}
		if err := stays.Teardown(); err != nil {
			t.Fatal(err)
		}
		wantNothingLeft(t, ns, before)
	}
}

// A helper that dies with a device up (its fd held by a backend that
// lives on) leaves journals; recovery removes the device, its addresses,
// its routes and the shared routes, and nothing else.
func TestJournalRecovery(t *testing.T) {
	ns := nstest.New(t, "tdjrn")
	withUplink(t, ns)
	before := routes(t, ns)
	dir := filepath.Join(t.TempDir(), "journal")
	st, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sj, _ := st.Create("shared-routes")
	tbl, err := sharedroute.New(ns.Handle, sj, nil)
	if err != nil {
		t.Fatal(err)
	}
	dj, _ := st.Create("dev-1")
	d, err := Setup(context.Background(), netconf.Config{
		Addresses:    []netip.Prefix{mp("10.8.0.2/24"), mp("fd00:8::2/64")},
		RedirectIPv4: true, BlockIPv6: true,
		Remote: ma("203.0.113.5"),
		Routes: []netconf.Route{{Prefix: mp("192.168.50.0/24"), Metric: 20}, {Prefix: mp("198.51.100.0/24"), Exclude: true}},
	}, Options{NetNS: ns.Handle, Journal: dj, Shared: tbl, Owner: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	backend := os.NewFile(uintptr(mustDup(t, d.File())), "backend")
	defer backend.Close()
	// The crash: nothing is torn down, only our handles go.
	d.CloseFile()
	d.nlh.Close()
	d.ns.Close()
	if len(tunLinks(t, ns)) != 1 {
		t.Fatal("device gone before recovery; the test needs it alive")
	}

	recoverAll(t, ns, dir, before)
}

// redirect-gateway local: the server is on the local network, so it gets
// no host route; without the flag it always gets one, even without any
// redirect (a later session or pushed route may cover it).
func TestRedirectLocalSkipsServerRoute(t *testing.T) {
	ns := nstest.New(t, "tdloc")
	withUplink(t, ns)
	for _, local := range []bool{true, false} {
		d := setup(t, ns, netconf.Config{
			Addresses:     []netip.Prefix{mp("10.8.0.2/24")},
			Remote:        ma("10.99.0.77"),
			RedirectLocal: local,
		}, Options{})
		_, has := routes(t, ns)[routeKey{"10.99.0.77/32", "", mustIndex(t, ns, "up0")}]
		if has == local {
			t.Errorf("local=%v: host route to the server present=%v", local, has)
		}
		if err := d.Teardown(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecoverChangesNeverMade: Setup journals every address and route
// before it adds the first, so a crash can leave entries for changes that
// never happened (on a device that may not exist); recovery passes over
// them and removes the journal.
func TestRecoverChangesNeverMade(t *testing.T) {
	ns := nstest.New(t, "tdnev")
	withUplink(t, ns)
	before := routes(t, ns)
	dir := filepath.Join(t.TempDir(), "journal")
	st, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := st.Create("dev-1")
	gone := netlink.Route{Dst: prefixNet(mp("192.168.77.0/24")), LinkIndex: 4242, Priority: 20}
	if err := j.AddAll([]journal.Planned{
		{ID: "addr#1", Kind: sysrec.KindAddr, Data: sysrec.Addr{Link: "ovpn9", Prefix: mp("10.8.0.2/24")}},
		{ID: "route#2", Kind: sysrec.KindRoute, Data: sysrec.FromNetlink(gone, "ovpn9")},
	}); err != nil {
		t.Fatal(err)
	}
	recoverAll(t, ns, dir, before)
}

// recoverAll runs the helper's recovery of the journals in dir, as at its
// next start, and checks that nothing is left, on the system or on disk.
func recoverAll(t *testing.T, ns *nstest.Namespace, dir string, before map[routeKey]bool) {
	t.Helper()
	st, _ := journal.Open(dir)
	var u journal.Undoers
	sysrec.Register(&u, func() (*netlink.Handle, error) { return ns.Netlink, nil })
	if err := st.Recover(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	wantNothingLeft(t, ns, before)
	if left, _ := st.Pending(); len(left) != 0 {
		t.Errorf("journals left: %+v", left)
	}
}

// The shared routes are taken while the device gets its addresses and
// comes up, but the tunnel's routes wait for them: watched on the
// namespace's route events, the server's pin outside the tunnel comes
// before the redirect's halves that would cover it, even when taking it
// is slow (here: held back 100 ms).
func TestServerPinnedBeforeTunnelRoutes(t *testing.T) {
	ns := nstest.New(t, "tdord")
	withUplink(t, ns)
	real := acquireShared
	acquireShared = func(tbl *sharedroute.Table, owner string, specs []sharedroute.Spec) error {
		time.Sleep(100 * time.Millisecond)
		return real(tbl, owner, specs)
	}
	t.Cleanup(func() { acquireShared = real })
	ch, done := make(chan netlink.RouteUpdate, 64), make(chan struct{})
	defer close(done)
	if err := netlink.RouteSubscribeAt(ns.Handle, ch, done); err != nil {
		t.Fatal(err)
	}
	setup(t, ns, netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.2/24")}, RedirectIPv4: true, Remote: ma("203.0.113.5"),
	}, Options{})
	var order []string
	for len(order) < 3 {
		select {
		case u := <-ch:
			if u.Type != unix.RTM_NEWROUTE || u.Dst == nil {
				continue
			}
			switch p := sysrec.Prefix(u.Dst).String(); p {
			case "203.0.113.5/32", "0.0.0.0/1", "128.0.0.0/1":
				order = append(order, p)
			}
		case <-time.After(10 * time.Second): // a hang guard, not a speed check
			t.Fatalf("route events seen: %v", order)
		}
	}
	if order[0] != "203.0.113.5/32" {
		t.Errorf("routes added in the order %v: the server's pin must come first", order)
	}
	if got := routeTo(t, ns, "203.0.113.5"); got != "up0" {
		t.Errorf("server routed via %s", got)
	}
}

// A shared route that cannot be taken (here: the table is closed) fails the
// setup after the addresses went in meanwhile: nothing stays.
func TestSharedRouteFailureLeavesNothing(t *testing.T) {
	ns := nstest.New(t, "tdshf")
	withUplink(t, ns)
	before := routes(t, ns)
	tbl, err := sharedroute.New(ns.Handle, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Setup(context.Background(), netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.2/24")}, RedirectIPv4: true, Remote: ma("203.0.113.5"),
	}, Options{NetNS: ns.Handle, Shared: tbl, Owner: "dev-shf"})
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Setup with a closed shared route table: %v", err)
	}
	wantNothingLeft(t, ns, before)
}
