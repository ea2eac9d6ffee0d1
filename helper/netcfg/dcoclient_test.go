package netcfg

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco/dcotest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// OpenDCO is Establish in DCO mode: the ovpn device gets the addresses and
// routes, no TUN device and no fd appear, the peer's socket and keys reach
// the kernel through the /dco object, and Close undoes all of it.
func TestOpenDCO(t *testing.T) {
	f := newFixture(t, "ncodco")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := &dcotest.Kernel{Links: f.ns.Netlink}
	f.svc.SetDCOKernel(func(netns.NsHandle) (DCOKernel, error) { return k, nil })
	stateDir := t.TempDir()
	if err := f.svc.SetStateDir(stateDir); err != nil {
		t.Fatal(err)
	}
	// What a helper starting after a crash would find.
	records := func() []string {
		t.Helper()
		st, err := journal.Open(filepath.Join(stateDir, JournalDirName))
		if err != nil {
			t.Fatal(err)
		}
		left, err := st.Pending()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range left {
			for _, e := range l.Entries {
				out = append(out, e.Kind+" "+string(e.Data))
			}
		}
		return out
	}

	uc, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1194})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	cfg := netconf.Config{
		Addresses: []netip.Prefix{mp("10.8.0.2/24"), mp("fd00:8::2/64")},
		Gateway4:  ma("10.8.0.1"),
		Routes:    []netconf.Route{{Prefix: mp("192.168.50.0/24"), Metric: 20}},
		MTU:       1420,
		Remote:    ma("203.0.113.5"),
	}
	d, err := f.client.OpenDCO(ctx, "tokdco", "ovpndcot0", cfg,
		netcfgclient.DCOPeer{ID: 5, Socket: uc, Remote: netip.MustParseAddrPort("203.0.113.5:1194"), VPN4: ma("10.8.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "ovpndcot0" {
		t.Errorf("device name %q, want ovpndcot0", d.Name())
	}
	if recs := strings.Join(records(), "\n"); !strings.Contains(recs, sysrec.KindLink+` {"name":"ovpndcot0","type":"ovpn"}`) ||
		!strings.Contains(recs, sysrec.KindAddr) || !strings.Contains(recs, sysrec.KindRoute) {
		t.Errorf("the journal lacks the ovpn device, its addresses or routes:\n%s", recs)
	}
	if links := f.tunLinks(t); len(links) != 0 {
		t.Errorf("DCO mode created TUN devices %v", links)
	}
	addrs := f.ns.IP(t, "addr", "show", "dev", "ovpndcot0")
	for _, want := range []string{"10.8.0.2/24", "fd00:8::2/64", "mtu 1420"} {
		if !strings.Contains(addrs, want) {
			t.Errorf("the ovpn device lacks %s:\n%s", want, addrs)
		}
	}
	if r := f.ns.IP(t, "route", "show", "192.168.50.0/24"); !strings.Contains(r, "dev ovpndcot0") {
		t.Errorf("pushed route not through the ovpn device: %q", r)
	}
	if r := f.ns.IP(t, "route", "show", "203.0.113.5"); !strings.Contains(r, "dev up0") {
		t.Errorf("no host route to the server outside the tunnel: %q", r)
	}

	key := dco.KeyConf{KeyID: 1, Cipher: dco.CipherAESGCM,
		Encrypt: dco.KeyDir{Key: make([]byte, 32)}, Decrypt: dco.KeyDir{Key: make([]byte, 32)}}
	steps := []func() error{
		func() error { return d.NewKey(ctx, dco.SlotPrimary, key) },
		func() error { return d.SetKeepalive(ctx, 10, 60) },
		func() error { return d.NewKey(ctx, dco.SlotSecondary, key) },
		func() error { return d.SwapKeys(ctx) },
		func() error { return d.DelKey(ctx, dco.SlotSecondary) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	st, err := d.PeerStats(ctx)
	if err != nil || st["BYTES_IN"] != 500 || st["TUN_PACKETS_IN"] != 4 {
		t.Errorf("PeerStats: %v, %v", st, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
	if recs := records(); len(recs) != 0 {
		t.Errorf("records left after Close: %q", recs)
	}
	if _, err := f.ns.Netlink.LinkByName("ovpndcot0"); err == nil {
		t.Error("the ovpn device outlived Close")
	}
	ifx := strings.Fields(k.Calls()[1])[1] // "new-peer <ifindex> …"
	want := []string{
		"create ovpndcot0",
		"new-peer " + ifx + " id=5 remote=203.0.113.5:1194 vpn4=10.8.0.1 vpn6=invalid IP",
		"new-key " + ifx + " peer=5 slot=0 key=1 alg=1",
		"keepalive " + ifx + " id=5 10/60",
		"new-key " + ifx + " peer=5 slot=1 key=1 alg=1",
		"swap " + ifx + " id=5",
		"del-key " + ifx + " id=5 slot=1",
		"stats " + ifx + " id=5",
		"delete-device " + ifx,
	}
	if got := k.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kernel calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
