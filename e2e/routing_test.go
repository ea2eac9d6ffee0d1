package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// "Internet" hosts on the server's loopback: reachable from the client both
// directly over the veth (through the client's default routes) and through
// the tunnel, so a test can tell which way traffic took.
const (
	netHost4 = "203.0.113.1"
	netHost6 = "2001:db8:ff::1"
)

// routingStack is a stack whose server (variant i over IPv4 UDP: IPv4 and
// IPv6 inside the tunnel) lets one client certificate connect twice, with
// the internet hosts set up and default routes in the client namespace.
func routingStack(t *testing.T) *testbed.Stack {
	t.Helper()
	testenv.RequireCommand(t, "ping")
	st := testbed.NewStack(t, binaries(t), testbed.VariantI, func(o *testbed.StackOptions) {
		o.Server.Proto = testbed.ProtoUDP
		o.Server.Extra = []string{"duplicate-cn"}
	})
	ipIn(t, st.Pair.ServerNS, "addr", "add", netHost4+"/32", "dev", "lo")
	ipIn(t, st.Pair.ServerNS, "addr", "add", netHost6+"/128", "dev", "lo", "nodad")
	ipIn(t, st.Pair.ClientNS, "route", "add", "default", "via", testbed.ServerIP4)
	ipIn(t, st.Pair.ClientNS, "-6", "route", "add", "default", "via", testbed.ServerIP6)
	// The kernel gives the veth its link-local address (and, after DAD,
	// its local route) a moment after the link came up; the start state
	// must already have it.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(ipIn(t, st.Pair.ClientNS, "-6", "route", "show", "table", "local"), "local fe80") {
		if time.Now().After(deadline) {
			t.Fatalf("no IPv6 link-local address on %s", st.Pair.ClientLink)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st
}

func ipIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := testbed.Run(context.Background(), ns, "ip", args...)
	if err != nil {
		t.Fatalf("ip %s: %v", strings.Join(args, " "), err)
	}
	return out
}

var devRE = regexp.MustCompile(`\bdev (\S+)`)

// routeDev is the device the kernel sends addr to, or "unreachable".
func routeDev(t *testing.T, ns, addr string) string {
	t.Helper()
	out, err := testbed.Run(context.Background(), ns, "ip", "-o", "route", "get", addr)
	if err != nil {
		if strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "No route to host") {
			return "unreachable"
		}
		t.Fatalf("ip route get %s: %v", addr, err)
	}
	if strings.HasPrefix(strings.TrimSpace(out), "unreachable") {
		return "unreachable"
	}
	m := devRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ip route get %s: no device in %q", addr, out)
	}
	return m[1]
}

// netSnapshot is what must be the same before a session and after it:
// the links, all IPv4 and IPv6 routes of every table, and the rules.
func netSnapshot(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"-o", "link", "show"},
		{"-4", "route", "show", "table", "all"},
		{"-6", "route", "show", "table", "all"},
		{"rule", "show"},
		{"-6", "rule", "show"},
	} {
		out, err := testbed.Run(context.Background(), ns, "ip", args...)
		if err != nil {
			t.Fatalf("ip %s: %v", strings.Join(args, " "), err)
		}
		if args[1] == "link" && args[0] == "-o" {
			// Names only: counters and flags such as NO-CARRIER may change.
			var names []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(l); len(f) > 1 {
					names = append(names, strings.TrimSuffix(f[1], ":"))
				}
			}
			out = strings.Join(names, " ") + "\n"
		}
		fmt.Fprintf(&b, "## ip %s\n%s", strings.Join(args, " "), out)
	}
	return b.String()
}

func wantSnapshot(t *testing.T, ns, want, when string) {
	t.Helper()
	// Teardown runs after SESS_DESTROYED is announced; give it a moment.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := netSnapshot(t, ns)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s the client namespace differs from its start state:\n--- start\n%s\n--- now\n%s", when, want, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leakWatch records the addresses of IP packets crossing one link (a
// packet socket bound to it), to show that traffic for a destination did
// not cross the link in the clear.
type leakWatch struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	seen map[netip.Addr]int
}

func watchLeaks(t *testing.T, ns, link string) *leakWatch {
	t.Helper()
	l := &leakWatch{stop: make(chan struct{}), done: make(chan struct{}), seen: map[netip.Addr]int{}}
	err := testbed.InNamespace(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		proto := int(uint16(syscall.ETH_P_ALL)<<8 | uint16(syscall.ETH_P_ALL)>>8)
		if l.fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto); err != nil {
			return err
		}
		if err := syscall.Bind(l.fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			syscall.Close(l.fd)
			return err
		}
		tv := syscall.Timeval{Usec: 100_000}
		return syscall.SetsockoptTimeval(l.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("watch %s in %s: %v", link, ns, err)
	}
	go l.read()
	t.Cleanup(l.close)
	return l
}

func (l *leakWatch) read() {
	defer close(l.done)
	buf := make([]byte, 65536)
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		n, _, err := syscall.Recvfrom(l.fd, buf, 0)
		if err != nil {
			continue
		}
		b := buf[:n]
		var src, dst netip.Addr
		switch {
		case n >= 20 && b[0]>>4 == 4:
			src, _ = netip.AddrFromSlice(b[12:16])
			dst, _ = netip.AddrFromSlice(b[16:20])
		case n >= 40 && b[0]>>4 == 6:
			src, _ = netip.AddrFromSlice(b[8:24])
			dst, _ = netip.AddrFromSlice(b[24:40])
		default:
			continue
		}
		l.mu.Lock()
		l.seen[src]++
		l.seen[dst]++
		l.mu.Unlock()
	}
}

// count is how many packets from or to addr crossed the link.
func (l *leakWatch) count(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[netip.MustParseAddr(addr)]
}

func (l *leakWatch) close() {
	select {
	case <-l.stop:
		return
	default:
	}
	close(l.stop)
	<-l.done
	syscall.Close(l.fd)
}

// startNamed starts a session from profile name and waits until that
// session (not another one) is connected.
func startNamed(t *testing.T, st *testbed.Stack, name string) (dbus.ObjectPath, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if _, err := st.CLI(ctx, "session-start", "--config", name); err != nil {
		t.Fatal(err)
	}
	path, err := st.SessionByConfig(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for {
		s := sessionStatus(t, st, path)
		if s.Major == api.StatusMajorConnection && s.Minor == api.StatusMinorConnConnected {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("session %s not connected: %+v", name, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	v, err := st.SessionProperty(ctx, path, "device_name")
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := v.Value().(string)
	if dev == "" {
		t.Fatalf("session %s has no device_name", name)
	}
	return path, dev
}

// stopNamed disconnects the session of profile name and waits until it is
// gone.
func stopNamed(t *testing.T, st *testbed.Stack, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path, err := st.SessionByConfig(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CLI(ctx, "session-manage", "--config", name, "--disconnect"); err != nil {
		t.Fatal(err)
	}
	for {
		var v dbus.Variant
		err := st.Conn.Object(api.ServiceSessions, path).CallWithContext(ctx, api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "status").Store(&v)
		if err != nil {
			return // the object is gone
		}
		if ctx.Err() != nil {
			t.Fatalf("session %s still there after disconnect", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pingOK(t *testing.T, ns, addr, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testbed.Ping(ctx, ns, addr, 3); err != nil {
		t.Errorf("%s: ping %s: %v", why, addr, err)
	}
}

func pingFails(t *testing.T, ns, addr, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := testbed.Run(ctx, ns, "ping", "-q", "-n", "-c", "2", "-i", "0.2", "-W", "1", addr); err == nil {
		t.Errorf("%s: ping %s got answers", why, addr)
	}
}

// TestRoutingRedirectGateway: with redirect-gateway def1 (IPv4 only, plus
// block-ipv6), with def1 ipv6, and with a route that covers the server,
// all traffic goes where it must, nothing crosses the LAN link in the
// clear, the server stays reachable outside the tunnel, pushed routes with
// metrics and IPv6 work, and disconnecting restores the start state.
func TestRoutingRedirectGateway(t *testing.T) {
	t.Parallel()
	st := routingStack(t)
	ns, veth := st.Pair.ClientNS, st.Pair.ClientLink
	start := netSnapshot(t, ns)
	// Before any tunnel, the internet hosts are reached over the LAN.
	pingOK(t, ns, netHost4, "without a tunnel")
	pingOK(t, ns, netHost6, "without a tunnel")

	for _, tc := range []struct {
		name  string
		extra []string
		check func(t *testing.T, dev string, leaks *leakWatch)
	}{
		{"def1-block-ipv6", []string{"redirect-gateway def1", "block-ipv6"}, func(t *testing.T, dev string, leaks *leakWatch) {
			if d := routeDev(t, ns, netHost4); d != dev {
				t.Errorf("%s goes to %s, want the tunnel %s", netHost4, d, dev)
			}
			pingOK(t, ns, netHost4, "redirected IPv4")
			if d := routeDev(t, ns, netHost6); d != "unreachable" {
				t.Errorf("%s goes to %s, want unreachable (block-ipv6)", netHost6, d)
			}
			pingFails(t, ns, netHost6, "block-ipv6")
			// The tunnel's own IPv6 (pushed route-ipv6) still works.
			pingOK(t, ns, testbed.LANHost6, "pushed route-ipv6 with block-ipv6")
			if n := leaks.count(netHost4) + leaks.count(netHost6); n != 0 {
				t.Errorf("%d packets to or from the internet hosts crossed %s in the clear", n, veth)
			}
		}},
		{"def1-ipv6", []string{"redirect-gateway def1 ipv6"}, func(t *testing.T, dev string, leaks *leakWatch) {
			for _, a := range []string{netHost4, netHost6} {
				if d := routeDev(t, ns, a); d != dev {
					t.Errorf("%s goes to %s, want the tunnel %s", a, d, dev)
				}
				pingOK(t, ns, a, "redirected")
			}
			if n := leaks.count(netHost4) + leaks.count(netHost6); n != 0 {
				t.Errorf("%d packets to or from the internet hosts crossed %s in the clear", n, veth)
			}
		}},
		{"route-covers-server", []string{"route 198.18.0.0 255.255.255.128", "route 203.0.113.0 255.255.255.0 198.19.0.254 77"}, func(t *testing.T, dev string, leaks *leakWatch) {
			// The /25 covers the server (198.18.0.1) and other LAN
			// addresses; only the server stays outside.
			if d := routeDev(t, ns, "198.18.0.5"); d != dev {
				t.Errorf("198.18.0.5 goes to %s, want the tunnel %s", d, dev)
			}
			out := ipIn(t, ns, "route", "show", "203.0.113.0/24")
			if !strings.Contains(out, "via 198.19.0.254 dev "+dev) || !strings.Contains(out, "metric 77") {
				t.Errorf("route with gateway 198.19.0.254 and metric 77: %q", out)
			}
			pingOK(t, ns, netHost4, "pushed route with a gateway and a metric")
			if n := leaks.count(netHost4); n != 0 {
				t.Errorf("%d packets to or from %s crossed %s in the clear", n, netHost4, veth)
			}
		}},
		{"def1-block-local", []string{"redirect-gateway def1 block-local"}, func(t *testing.T, dev string, leaks *leakWatch) {
			// The LAN goes into the tunnel too, except the gateway (here
			// the server's veth address, which also keeps its host route).
			for _, a := range []string{"198.18.0.77", "198.18.0.200", netHost4} {
				if d := routeDev(t, ns, a); d != dev {
					t.Errorf("block-local: %s goes to %s, want the tunnel %s", a, d, dev)
				}
			}
			pingOK(t, ns, netHost4, "block-local")
			if n := leaks.count(netHost4); n != 0 {
				t.Errorf("%d packets to or from %s crossed %s in the clear", n, netHost4, veth)
			}
		}},
		{"route-nopull", []string{"route-nopull"}, func(t *testing.T, dev string, leaks *leakWatch) {
			// Pushed routes and DNS are ignored; addresses still apply.
			for _, args := range [][]string{{"route", "show", "198.19.1.0/24"}, {"-6", "route", "show", "2001:2:0:9::/64"}} {
				if out := ipIn(t, ns, args...); strings.TrimSpace(out) != "" {
					t.Errorf("route-nopull, but ip %s: %q", strings.Join(args, " "), out)
				}
			}
			if got, _ := os.ReadFile(st.ResolvConf); strings.Contains(string(got), testbed.TunnelServer4) {
				t.Errorf("route-nopull, but the pushed DNS server is in resolv.conf:\n%s", got)
			}
		}},
		{"pull-filter", []string{`pull-filter ignore "route-ipv6"`}, func(t *testing.T, dev string, leaks *leakWatch) {
			if out := ipIn(t, ns, "route", "show", "198.19.1.0/24"); !strings.Contains(out, "dev "+dev) {
				t.Errorf("the pushed IPv4 route is missing: %q", out)
			}
			if out := ipIn(t, ns, "-6", "route", "show", "2001:2:0:9::/64"); strings.TrimSpace(out) != "" {
				t.Errorf("pull-filter ignore route-ipv6, but: %q", out)
			}
			pingOK(t, ns, testbed.LANHost4, "pushed route kept by the pull-filter")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "rt-" + tc.name
			importProfile(t, st, testbed.VariantI, name, tc.extra...)
			leaks := watchLeaks(t, ns, veth)
			_, dev := startNamed(t, st, name)
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					stopNamed(t, st, name) // the next case needs a clean start
				}
			})
			tc.check(t, dev, leaks)
			// The server is reached outside the tunnel, and the session
			// keeps working (a loop would kill it).
			if d := routeDev(t, ns, testbed.ServerIP4); d != veth {
				t.Errorf("the server %s goes to %s, want %s", testbed.ServerIP4, d, veth)
			}
			pingOK(t, ns, testbed.TunnelServer4, "through the tunnel")
			pingOK(t, ns, testbed.TunnelServer6, "IPv6 through the tunnel")
			stopped = true
			stopNamed(t, st, name)
			wantSnapshot(t, ns, start, "after "+tc.name+" disconnected,")
		})
	}
}

// TestRoutingTwoRedirectingSessions: two sessions that both redirect the
// gateway; disconnecting either one leaves the other carrying all traffic,
// and disconnecting both restores the start state.
func TestRoutingTwoRedirectingSessions(t *testing.T) {
	t.Parallel()
	st := routingStack(t)
	ns, veth := st.Pair.ClientNS, st.Pair.ClientLink
	start := netSnapshot(t, ns)
	for _, n := range []string{"two-a", "two-b"} {
		importProfile(t, st, testbed.VariantI, n, "redirect-gateway def1 ipv6")
	}
	leaks := watchLeaks(t, ns, veth)
	carries := func(dev, why string) {
		t.Helper()
		for _, a := range []string{netHost4, netHost6} {
			if d := routeDev(t, ns, a); d != dev {
				t.Errorf("%s: %s goes to %s, want %s", why, a, d, dev)
			}
			pingOK(t, ns, a, why)
		}
		pingOK(t, ns, testbed.TunnelServer4, why)
		if d := routeDev(t, ns, testbed.ServerIP4); d != veth {
			t.Errorf("%s: the server goes to %s, want %s", why, d, veth)
		}
	}
	_, devA := startNamed(t, st, "two-a")
	_, devB := startNamed(t, st, "two-b")
	carries(devA, "both up")
	stopNamed(t, st, "two-a")
	carries(devB, "a disconnected")
	_, devA = startNamed(t, st, "two-a")
	stopNamed(t, st, "two-b")
	carries(devA, "b disconnected")
	if n := leaks.count(netHost4) + leaks.count(netHost6); n != 0 {
		t.Errorf("%d packets to or from the internet hosts crossed %s in the clear", n, veth)
	}
	stopNamed(t, st, "two-a")
	wantSnapshot(t, ns, start, "after both sessions disconnected,")
}

// TestRoutingServerRouteFollowsGateway: the server is reached through a
// gateway; when the default gateway changes during a redirected session,
// the server's host route moves with it, and the session survives the
// old gateway going away.
func TestRoutingServerRouteFollowsGateway(t *testing.T) {
	t.Parallel()
	st := routingStack(t)
	ns, veth := st.Pair.ClientNS, st.Pair.ClientLink
	// Two gateways on the server side of the veth; the client reaches
	// everything, the server included, through one of them.
	const gw1, gw2 = "198.18.0.3", "198.18.0.4"
	for _, gw := range []string{gw1, gw2} {
		ipIn(t, st.Pair.ServerNS, "addr", "add", gw+"/32", "dev", st.Pair.ServerLink)
		ipIn(t, ns, "route", "add", gw+"/32", "dev", veth)
	}
	ipIn(t, ns, "route", "del", "198.18.0.0/24", "dev", veth)
	ipIn(t, ns, "route", "replace", "default", "via", gw1)
	start := netSnapshot(t, ns)
	importProfile(t, st, testbed.VariantI, "gw", "redirect-gateway def1")
	_, dev := startNamed(t, st, "gw")
	if out := ipIn(t, ns, "route", "get", testbed.ServerIP4); !strings.Contains(out, "via "+gw1) {
		t.Fatalf("server route %q, want via %s", out, gw1)
	}
	ipIn(t, ns, "route", "replace", "default", "via", gw2)
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := ipIn(t, ns, "route", "get", testbed.ServerIP4)
		if strings.Contains(out, "via "+gw2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server route did not follow the new default gateway: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old gateway goes away: the tunnel still works.
	ipIn(t, st.Pair.ServerNS, "addr", "del", gw1+"/32", "dev", st.Pair.ServerLink)
	if d := routeDev(t, ns, netHost4); d != dev {
		t.Errorf("%s goes to %s, want %s", netHost4, d, dev)
	}
	pingOK(t, ns, testbed.TunnelServer4, "after the gateway changed")
	pingOK(t, ns, netHost4, "after the gateway changed")
	stopNamed(t, st, "gw")
	want := strings.Replace(start, "default via "+gw1, "default via "+gw2, 1)
	wantSnapshot(t, ns, want, "after disconnect,")
}

// configPath is the object of the one imported profile called name.
func configPath(t *testing.T, st *testbed.Stack, name string) dbus.ObjectPath {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cfgs []dbus.ObjectPath
	if err := st.Conn.Object(api.ServiceConfiguration, api.PathConfiguration).
		CallWithContext(ctx, api.InterfaceConfiguration+".LookupConfigName", 0, name).Store(&cfgs); err != nil || len(cfgs) != 1 {
		t.Fatalf("LookupConfigName %s: %v %v", name, cfgs, err)
	}
	return cfgs[0]
}

// setOverride sets override key to v on the imported profile called name.
func setOverride(t *testing.T, st *testbed.Stack, name, key string, v any) {
	t.Helper()
	cfg := configPath(t, st, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Conn.Object(api.ServiceConfiguration, cfg).CallWithContext(ctx, api.InterfaceConfiguration+".SetOverride", 0,
		key, dbus.MakeVariant(v)).Err; err != nil {
		t.Fatalf("SetOverride %s: %v", key, err)
	}
}

// TestRoutingOverrides: profile overrides reach the tunnel (ipv6 no: no
// IPv6 address or route although the server pushes them; server-override
// and port-override: a profile pointing nowhere connects to the real
// server), and one this client cannot honour makes session-start fail
// naming it and the reason.
func TestRoutingOverrides(t *testing.T) {
	t.Parallel()
	st := routingStack(t)
	ns := st.Pair.ClientNS
	start := netSnapshot(t, ns)

	importProfile(t, st, testbed.VariantI, "ov-apply", "redirect-gateway def1 ipv6")
	setOverride(t, st, "ov-apply", "ipv6", "no")
	_, dev := startNamed(t, st, "ov-apply")
	if out := ipIn(t, ns, "-6", "addr", "show", "dev", dev, "scope", "global"); strings.Contains(out, "inet6") {
		t.Errorf("ipv6 no, but %s has IPv6 addresses:\n%s", dev, out)
	}
	if out := ipIn(t, ns, "-6", "route", "show", "dev", dev); strings.Contains(out, "2001:2:0:9::/64") || strings.Contains(out, "::/1") {
		t.Errorf("ipv6 no, but IPv6 routes go to %s:\n%s", dev, out)
	}
	if d := routeDev(t, ns, netHost4); d != dev {
		t.Errorf("IPv4 redirect lost with ipv6 no: %s goes to %s", netHost4, d)
	}
	pingOK(t, ns, testbed.TunnelServer4, "with ipv6 no")
	stopNamed(t, st, "ov-apply")
	wantSnapshot(t, ns, start, "after the ipv6-no session,")

	// server-override and port-override: the profile names a server and
	// port where nobody answers; the overrides send it to the real one.
	path, err := st.WriteProfile(testbed.VariantI)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	realRemote := fmt.Sprintf("remote %s %d", testbed.ServerIP4, testbed.Port)
	if !strings.Contains(string(text), realRemote) {
		t.Fatalf("profile has no %q line", realRemote)
	}
	bogus := strings.Replace(string(text), realRemote, "remote 192.0.2.99 1199", 1)
	if err := os.WriteFile(path, []byte(bogus), 0o600); err != nil {
		t.Fatal(err)
	}
	ictx, icancel := context.WithTimeout(context.Background(), 30*time.Second)
	if _, err := st.CLI(ictx, "config-import", "--config", path, "--name", "ov-server"); err != nil {
		t.Fatal(err)
	}
	icancel()
	setOverride(t, st, "ov-server", "server-override", testbed.ServerIP4)
	setOverride(t, st, "ov-server", "port-override", fmt.Sprint(testbed.Port))
	startNamed(t, st, "ov-server")
	pingOK(t, ns, testbed.TunnelServer4, "with server-override and port-override")
	stopNamed(t, st, "ov-server")
	wantSnapshot(t, ns, start, "after the server-override session,")

	importProfile(t, st, testbed.VariantI, "ov-refuse")
	setOverride(t, st, "ov-refuse", "enterprise-profile", "corp")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := st.CLI(ctx, "session-start", "--config", "ov-refuse")
	if err == nil {
		t.Fatalf("session-start with a refused override succeeded:\n%s", out)
	}
	if !strings.Contains(out, "enterprise-profile") || !strings.Contains(out, "device posture checks are not supported") {
		t.Errorf("session-start does not name the refused override and why:\n%s", out)
	}
	wantSnapshot(t, ns, start, "after the refused session,")
}
