package dns

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// resolvedScene is a real systemd-resolved in namespace "client" whose
// global DNS server is a LAN resolver in namespace "far" (over link lan0),
// plus a second link tun0 to the same namespace where the VPN's DNS server
// listens: the tunnel, as resolved sees it.
type resolvedScene struct {
	client, far *nstest.Namespace
	res         *testbed.Resolved
	lanDNS      *testbed.DNSServer
	vpnDNS      *testbed.DNSServer
	tun         Link
}

var (
	lanServer = netip.MustParseAddr("10.54.0.1")
	vpnServer = netip.MustParseAddr("10.53.0.1")
	// The LAN and the VPN answer the same names differently, so an answer
	// says which server gave it.
	lanAnswer = netip.MustParseAddr("10.54.9.9")
	vpnAnswer = netip.MustParseAddr("10.53.9.9")
)

func newResolvedScene(t *testing.T) *resolvedScene {
	t.Helper()
	res := testbed.NewResolved(t)
	s := &resolvedScene{client: nstest.New(t, "dnsc"), far: nstest.New(t, "dnsf"), res: res}
	for _, l := range []struct{ here, there, net string }{{"lan0", "lanp", "10.54.0"}, {"tun0", "tunp", "10.53.0"}} {
		s.client.IP(t, "link", "add", l.here, "type", "veth", "peer", "name", l.there, "netns", s.far.Name)
		s.client.IP(t, "addr", "add", l.net+".2/24", "dev", l.here)
		s.client.IP(t, "link", "set", l.here, "up")
		s.far.IP(t, "addr", "add", l.net+".1/24", "dev", l.there)
		s.far.IP(t, "link", "set", l.there, "up")
	}
	answers := func(a netip.Addr) map[string]netip.Addr {
		return map[string]netip.Addr{"corp.example": a, "example.com": a}
	}
	s.lanDNS = testbed.StartDNSServer(t, s.far.Name, netip.AddrPortFrom(lanServer, 0), answers(lanAnswer))
	s.vpnDNS = testbed.StartDNSServer(t, s.far.Name, netip.AddrPortFrom(vpnServer, 5353), answers(vpnAnswer))
	res.Start(t, s.client.Name, lanServer)
	link, err := s.client.Netlink.LinkByName("tun0")
	if err != nil {
		t.Fatal(err)
	}
	s.tun = Link{Key: "/dev/tun0", Index: link.Attrs().Index, Name: "tun0",
		Servers: []netip.AddrPort{netip.AddrPortFrom(vpnServer, 5353)}}
	return s
}

// stubResolvConf is a resolv.conf pointing at resolved's stub listener, as
// on a system that uses resolved.
func stubResolvConf(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolve asks resolved for name and says which server answered.
func (s *resolvedScene) resolve(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addrs, err := s.res.ResolveHostname(ctx, name)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case slices.Equal(addrs, []netip.Addr{vpnAnswer}):
		return "vpn"
	case slices.Equal(addrs, []netip.Addr{lanAnswer}):
		return "lan"
	}
	return fmt.Sprint(addrs)
}

// linkState reads resolved's view of the tunnel link.
type linkState struct {
	DNS          []string // "addr:port#name"
	Domains      []string // "~" marks routing-only
	DefaultRoute bool
	DNSSEC       string
	DNSOverTLS   string
}

func (s *resolvedScene) linkState(t *testing.T) linkState {
	t.Helper()
	var path dbus.ObjectPath
	mgr := s.res.Conn.Object(ResolvedName, resolvedPath)
	if err := mgr.Call(resolvedManager+".GetLink", 0, int32(s.tun.Index)).Store(&path); err != nil {
		t.Fatal(err)
	}
	link := s.res.Conn.Object(ResolvedName, path)
	get := func(name string, out any) {
		t.Helper()
		v, err := link.GetProperty("org.freedesktop.resolve1.Link." + name)
		if err != nil {
			t.Fatalf("link property %s: %v", name, err)
		}
		if err := dbus.Store([]any{v.Value()}, out); err != nil {
			t.Fatalf("link property %s: %v", name, err)
		}
	}
	var st linkState
	var dnsEx []dnsEx
	get("DNSEx", &dnsEx)
	for _, d := range dnsEx {
		a, _ := netip.AddrFromSlice(d.Address)
		st.DNS = append(st.DNS, fmt.Sprintf("%v#%s", netip.AddrPortFrom(a, d.Port), d.Name))
	}
	var doms []domainEntry
	get("Domains", &doms)
	for _, d := range doms {
		if d.RoutingOnly {
			st.Domains = append(st.Domains, "~"+d.Domain)
		} else {
			st.Domains = append(st.Domains, d.Domain)
		}
	}
	get("DefaultRoute", &st.DefaultRoute)
	get("DNSSEC", &st.DNSSEC)
	get("DNSOverTLS", &st.DNSOverTLS)
	return st
}

func (s *resolvedScene) linkNames(i int) (string, error) {
	l, err := s.client.Netlink.LinkByIndex(i)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}

// TestResolvedSplitAndFullDNS runs the resolved backend against a real
// systemd-resolved: with split DNS only names below the routing domain go
// to the tunnel's server (on a non-standard port), with full DNS every name
// does and the LAN server sees none; RevertLink gives the LAN resolver back.
func TestResolvedSplitAndFullDNS(t *testing.T) {
	s := newResolvedScene(t)
	state := t.TempDir()
	m, err := New(context.Background(), Options{StateDir: state, ResolvConf: stubResolvConf(t),
		Bus: s.res.Conn, LinkName: s.linkNames, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Backend() != "systemd-resolved" {
		t.Fatalf("backend %s with resolved running", m.Backend())
	}
	ctx := context.Background()
	if got := s.resolve(t, "a.corp.example"); got != "lan" {
		t.Fatalf("before the VPN: a.corp.example from %s", got)
	}

	split := s.tun
	split.Routing = []string{"corp.example"}
	split.Search = []string{"search.example"}
	split.DNSSEC, split.Transport = "optional", "plain"
	a, err := m.Apply(ctx, split)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.linkState(t); fmt.Sprintf("%+v", st) != "{DNS:[10.53.0.1:5353#] Domains:[search.example ~corp.example] DefaultRoute:false DNSSEC:allow-downgrade DNSOverTLS:no}" {
		t.Errorf("resolved's link with split DNS: %+v", st)
	}
	if fmt.Sprint(a.Servers, a.Search) != "[10.53.0.1:5353] [search.example ~corp.example]" {
		t.Errorf("applied %+v", a)
	}
	if _, err := os.Stat(filepath.Join(state, JournalDir, "resolved.json")); err != nil {
		t.Errorf("no journal while applied: %v", err)
	}
	if got := s.resolve(t, "b.corp.example"); got != "vpn" {
		t.Errorf("split DNS: b.corp.example from %s, want vpn", got)
	}
	if got := s.resolve(t, "b.example.com"); got != "lan" {
		t.Errorf("split DNS: b.example.com from %s, want lan", got)
	}
	if s.lanDNS.Asked("b.corp.example") {
		t.Error("split DNS: the LAN server was asked for a name of the VPN's domain")
	}

	full := s.tun
	full.DefaultRoute = true
	if _, err := m.Apply(ctx, full); err != nil {
		t.Fatal(err)
	}
	if st := s.linkState(t); !st.DefaultRoute || !slices.Equal(st.Domains, []string{"~."}) {
		t.Errorf("resolved's link with full DNS: %+v", st)
	}
	for _, name := range []string{"c.example.com", "c.corp.example"} {
		if got := s.resolve(t, name); got != "vpn" {
			t.Errorf("full DNS: %s from %s, want vpn", name, got)
		}
		if s.lanDNS.Asked(name) {
			t.Errorf("full DNS: %s leaked to the LAN server", name)
		}
	}

	if _, err := m.Revert(ctx, full.Key); err != nil {
		t.Fatal(err)
	}
	if st := s.linkState(t); len(st.DNS)+len(st.Domains) != 0 {
		t.Errorf("resolved's link after RevertLink: %+v", st)
	}
	for _, name := range []string{"d.example.com", "d.corp.example"} {
		if got := s.resolve(t, name); got != "lan" {
			t.Errorf("after revert: %s from %s, want lan", name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(state, JournalDir, "resolved.json")); !os.IsNotExist(err) {
		t.Errorf("journal left after revert: %v", err)
	}
}

// TestResolvedRecover: a helper that died with a link configured leaves a
// journal; the next start reverts the link (still there under its name).
func TestResolvedRecover(t *testing.T) {
	s := newResolvedScene(t)
	state := t.TempDir()
	opts := Options{StateDir: state, ResolvConf: stubResolvConf(t), Bus: s.res.Conn,
		LinkName: s.linkNames, Logger: testLogger(t)}
	crashed, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	full := s.tun
	full.DefaultRoute = true
	synced := countSyncs(t)
	if _, err := crashed.Apply(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	if got := synced(); len(got) != 0 {
		t.Errorf("the Apply synced %q: the resolved journal is not synced", got)
	}
	if got := s.resolve(t, "e.example.com"); got != "vpn" {
		t.Fatalf("full DNS: from %s", got)
	}
	if _, err := New(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := s.resolve(t, "f.example.com"); got != "lan" {
		t.Errorf("after recovery: f.example.com from %s, want lan", got)
	}
	if _, err := os.Stat(filepath.Join(state, JournalDir, "resolved.json")); !os.IsNotExist(err) {
		t.Errorf("journal left after recovery: %v", err)
	}
}

// TestResolvedDNSOverTLS: a DoT server reaches resolved with its name, and
// the link gets DNSOverTLS=yes (not queried: the test server speaks no TLS).
func TestResolvedDNSOverTLS(t *testing.T) {
	s := newResolvedScene(t)
	m, err := New(context.Background(), Options{StateDir: t.TempDir(), ResolvConf: stubResolvConf(t),
		Bus: s.res.Conn, LinkName: s.linkNames, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	dot := s.tun
	dot.Servers = []netip.AddrPort{netip.AddrPortFrom(vpnServer, 8853)}
	dot.Transport, dot.SNI, dot.DNSSEC, dot.DefaultRoute = "dot", "dns.corp.example", "yes", true
	if _, err := m.Apply(context.Background(), dot); err != nil {
		t.Fatal(err)
	}
	if st := s.linkState(t); fmt.Sprintf("%+v", st) != "{DNS:[10.53.0.1:8853#dns.corp.example] Domains:[~.] DefaultRoute:true DNSSEC:yes DNSOverTLS:yes}" {
		t.Errorf("resolved's link with DNS over TLS: %+v", st)
	}
	if _, err := m.Revert(context.Background(), dot.Key); err != nil {
		t.Fatal(err)
	}
}

// TestResolvedNotAskedByGlibc: a resolved that runs while resolv.conf names
// other servers is not what lookups go to, so the tunnel's DNS goes into
// resolv.conf; once resolv.conf points at resolved's stub (a symlink into
// its directory), the next tunnel uses resolved.
func TestResolvedNotAskedByGlibc(t *testing.T) {
	s := newResolvedScene(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	const foreign = "nameserver 10.54.0.1\n"
	if err := os.WriteFile(path, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := New(context.Background(), Options{StateDir: t.TempDir(), ResolvConf: path, Bus: s.res.Conn,
		LinkName: s.linkNames, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	full := s.tun
	full.Servers = []netip.AddrPort{netip.AddrPortFrom(vpnServer, 0)}
	full.DefaultRoute = true
	if _, err := m.Apply(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	if m.Backend() != "resolv.conf" || !strings.Contains(readFile(t, path), "nameserver 10.53.0.1\n") {
		t.Errorf("backend %s, resolv.conf:\n%s", m.Backend(), readFile(t, path))
	}
	if _, err := m.Revert(context.Background(), full.Key); err != nil {
		t.Fatal(err)
	}
	if readFile(t, path) != foreign {
		t.Errorf("resolv.conf not restored: %q", readFile(t, path))
	}

	stub := filepath.Join(dir, "systemd", "resolve", "stub-resolv.conf")
	if err := os.MkdirAll(filepath.Dir(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stub, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("systemd/resolve/stub-resolv.conf", path); err != nil {
		t.Fatal(err)
	}
	full.Servers = s.tun.Servers // resolved can use the responder's port
	if _, err := m.Apply(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	if m.Backend() != "systemd-resolved" {
		t.Errorf("backend %s with resolv.conf linked to the stub", m.Backend())
	}
	if got := s.resolve(t, "g.example.com"); got != "vpn" {
		t.Errorf("g.example.com from %s, want vpn", got)
	}
	if _, err := m.Revert(context.Background(), full.Key); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(path); err != nil || l != "systemd/resolve/stub-resolv.conf" {
		t.Errorf("resolv.conf symlink touched: %q %v", l, err)
	}
}

// A resolved journal torn by a crash of the machine (it is not synced)
// is dropped at the next start, not reported at every start.
func TestResolvedTornJournalDropped(t *testing.T) {
	for _, torn := range []string{"", `{"Links":[{"Index":7,"Na`} {
		state := t.TempDir()
		path := filepath.Join(state, JournalDir, "resolved.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(torn), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := NewResolved(nil, state, testLogger(t)).Recover(context.Background()); err != nil {
			t.Errorf("Recover of %q: %v", torn, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("torn journal %q still there: %v", torn, err)
		}
	}
}
