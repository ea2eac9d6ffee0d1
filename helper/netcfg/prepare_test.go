package netcfg

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// Prepare creates the TUN device before Establish: it exists, down and
// without addresses, while the tunnel would still be negotiated, and
// EstablishOn configures that same device (no second one) and hands it
// over working.
func TestPrepareThenEstablish(t *testing.T) {
	f := newFixture(t, "ncprep")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path, err := f.client.Prepare(ctx, "tokp", false)
	if err != nil {
		t.Fatal(err)
	}
	links := f.tunLinks(t)
	if len(links) != 1 {
		t.Fatalf("TUN devices after Prepare: %v, want one", links)
	}
	link, err := f.ns.Netlink.LinkByName(links[0])
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().Flags&net.FlagUp != 0 {
		t.Errorf("prepared device %s is up before Establish", links[0])
	}
	// Not established yet: no device name to report, no routes.
	checkProp(t, f.conn.Object(api.ServiceNetCfg, path), "device_name", "")
	for r := range f.routes(t) {
		if !f.baseline[r] {
			t.Errorf("route before Establish: %s", r)
		}
	}
	tun, err := f.client.OpenOn(ctx, path, testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if tun.Name() != links[0] || tun.Path() != path {
		t.Errorf("established %s at %s, prepared %s at %s", tun.Name(), tun.Path(), links[0], path)
	}
	if got := f.tunLinks(t); len(got) != 1 {
		t.Errorf("TUN devices after Establish: %v", got)
	}
	pingThroughTun(t, tun.File())
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
}

// A prepared device never established leaves nothing behind however the
// session ends first: Destroy (a disconnect), Disable, the creator leaving
// the bus (a backend that died), or a failed Establish. One prepared with
// the other vnet_hdr than Establish asks for is replaced by a fitting one.
func TestPreparedDeviceGoes(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, f *fixture, path dbus.ObjectPath)
	}{
		{"destroy", func(t *testing.T, f *fixture, path dbus.ObjectPath) {
			if err := f.client.Destroy(context.Background(), path); err != nil {
				t.Fatal(err)
			}
		}},
		{"disable", func(t *testing.T, f *fixture, path dbus.ObjectPath) {
			dev := f.conn.Object(api.ServiceNetCfg, path)
			if err := dev.Call(api.InterfaceNetCfg+".Disable", 0).Err; err != nil {
				t.Fatal(err)
			}
			if got := f.tunLinks(t); len(got) != 0 {
				t.Errorf("TUN devices after Disable: %v", got)
			}
			if err := f.client.Destroy(context.Background(), path); err != nil {
				t.Fatal(err)
			}
		}},
		{"creator left", func(t *testing.T, f *fixture, _ dbus.ObjectPath) { f.conn.Close() }},
		{"failed establish", func(t *testing.T, f *fixture, path dbus.ObjectPath) {
			bad := testCfg
			bad.MTU = 100 // refused
			if _, err := f.client.OpenOn(context.Background(), path, bad); err == nil {
				t.Fatal("Establish with MTU 100 succeeded")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "ncpgo")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			path, err := f.client.Prepare(ctx, "tokg", false)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.tunLinks(t); len(got) != 1 {
				t.Fatalf("TUN devices after Prepare: %v", got)
			}
			tc.end(t, f, path)
			f.waitClean(t)
		})
	}
	t.Run("other vnet_hdr", func(t *testing.T) {
		f := newFixture(t, "ncpvh")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		path, err := f.client.Prepare(ctx, "tokv", true)
		if err != nil {
			t.Fatal(err)
		}
		tun, err := f.client.OpenOn(ctx, path, testCfg) // VnetHdr false
		if err != nil {
			t.Fatal(err)
		}
		if got := f.tunLinks(t); len(got) != 1 || got[0] != tun.Name() {
			t.Errorf("TUN devices %v, want only the established %s", got, tun.Name())
		}
		pingThroughTun(t, tun.File()) // no virtio_net_hdr expected
		if err := tun.Close(); err != nil {
			t.Fatal(err)
		}
		f.waitClean(t)
	})
}

// Establish gives the resolver the DNS settings while it configures the
// prepared device; when the configuration fails after that (here: IPv6
// is off in the namespace, so the IPv6 address is refused), the DNS
// settings are taken back and neither device nor route is left.
func TestFailedEstablishRevertsDNS(t *testing.T) {
	f := newFixture(t, "ncpdn")
	if out, err := exec.Command("ip", "netns", "exec", f.ns.Name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	const orig = "nameserver 10.99.0.254\n"
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	f.svc.SetDNS(dns.NewManager(dns.NewResolvConf(resolv, t.TempDir(), slog.New(slog.NewTextHandler(testWriter{t}, nil))), nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path, err := f.client.Prepare(ctx, "tokd", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.client.OpenOn(ctx, path, testCfg) // testCfg has fd00:8::2/64
	if err == nil || !strings.Contains(err.Error(), "fd00:8::2") {
		t.Fatalf("Establish with IPv6 off: %v, want the IPv6 address refused", err)
	}
	f.waitClean(t)
	if b, err := os.ReadFile(resolv); err != nil || string(b) != orig {
		t.Errorf("resolv.conf after the failed Establish: %q, %v; want %q", b, err, orig)
	}
	if servers, _ := f.svc.globalDNS(); len(servers) != 0 {
		t.Errorf("DNS servers still applied: %v", servers)
	}
}

// BenchmarkEstablish times what a backend waits for after the PUSH_REPLY,
// both ways in turns (A B A B …, so a loaded machine weighs on both
// alike), and reports the medians: fresh-ms is the device object, its
// settings and Establish (the device made then); prepared-ms is the
// settings and Establish of a device Prepare made beforehand (untimed),
// as a backend does during the handshake (taken as 20 ms, for both). DNS
// goes to a resolv.conf of the benchmark's own. As root:
//
//	go test -run '^$' -bench Establish -benchtime 40x ./helper/netcfg/
func BenchmarkEstablish(b *testing.B) {
	f := newFixture(b, "ncbench")
	resolv := filepath.Join(b.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.99.0.254\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	f.svc.SetDNS(dns.NewManager(dns.NewResolvConf(resolv, b.TempDir(), quiet), quiet))
	ctx := context.Background()
	const handshake = 20 * time.Millisecond
	once := func(prepared bool) time.Duration {
		var path dbus.ObjectPath
		if prepared {
			var err error
			if path, err = f.client.Prepare(ctx, "tokb", false); err != nil {
				b.Fatal(err)
			}
		}
		// The handshake, during which a backend's Prepare is answered
		// and the events of the new link are handled.
		time.Sleep(handshake)
		start := time.Now()
		var tun *netcfgclient.Tun
		var err error
		if prepared {
			tun, err = f.client.OpenOn(ctx, path, testCfg)
		} else {
			tun, err = f.client.Open(ctx, "tokb", testCfg)
		}
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if err := tun.Close(); err != nil {
			b.Fatal(err)
		}
		f.waitClean(b)
		return took
	}
	var fresh, prepared []time.Duration
	i := 0
	for b.Loop() {
		preparedFirst := i%2 == 0 // which goes first alternates too
		i++
		a := once(preparedFirst)
		c := once(!preparedFirst)
		if preparedFirst {
			prepared, fresh = append(prepared, a), append(fresh, c)
		} else {
			fresh, prepared = append(fresh, a), append(prepared, c)
		}
	}
	ms := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(fresh), "fresh-ms")
	b.ReportMetric(ms(prepared), "prepared-ms")
}

// Prepare also has the resolver backend chosen (whether systemd-resolved
// runs: a bus round trip) and the resolv.conf backend's journal written
// (two syncs), beside it, so the Establish on the way to connected does
// neither; resolv.conf itself changes only at the Establish. (The journal
// stays after the Close, naming the original back in place, for the next
// tunnel: dns.TestApplySyncs.)
func TestPrepareChoosesResolver(t *testing.T) {
	f := newFixture(t, "ncchs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.99.0.254\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	m, err := dns.New(ctx, dns.Options{StateDir: state, ResolvConf: resolv, Bus: f.conn, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.SetDNS(m)
	journal := filepath.Join(state, dns.JournalDir, "resolvconf.json")
	resolvIs := func(when, want string) {
		t.Helper()
		if b, err := os.ReadFile(resolv); err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("resolv.conf %s: %q %v, want it to begin %q", when, b, err, want)
		}
	}
	mon, err := testbed.MonitorCalls(f.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	asked := func() int {
		t.Helper()
		if err := mon.Sync(ctx, f.conn); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range mon.Calls() {
			if c.Member == "NameHasOwner" && len(c.Body) == 1 && c.Body[0] == dns.ResolvedName {
				n++
			}
		}
		return n
	}
	path, err := f.client.Prepare(ctx, "tokc", false)
	if err != nil {
		t.Fatal(err)
	}
	// The choice runs beside the Prepare. Not f.svc.wg: a client leaving
	// the bus starts a cleanup on it at any moment, and an Add from zero
	// beside a Wait is a race.
	f.svc.choosing.Wait()
	if n := asked(); n != 1 {
		t.Fatalf("Prepare asked %d times whether resolved runs, want once", n)
	}
	// The resolv.conf backend's journal is written meanwhile too; the
	// host's resolver is not touched before the Establish.
	if _, err := os.Stat(journal); err != nil {
		t.Errorf("no DNS journal written beside the Prepare: %v", err)
	}
	resolvIs("after Prepare", "nameserver 10.99.0.254\n")
	tun, err := f.client.OpenOn(ctx, path, testCfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := asked(); n != 1 {
		t.Errorf("the Establish asked again whether resolved runs (%d questions in all)", n)
	}
	resolvIs("once established", "# Written by ovpn3go")
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
	resolvIs("after Close", "nameserver 10.99.0.254\n")
}

// Prepare is one call (PrepareVirtualInterface): the device object and its
// TUN device in one round trip during the handshake. A label the service
// refuses leaves no object.
func TestPrepareIsOneCall(t *testing.T) {
	f := newFixture(t, "ncpvi")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mon, err := testbed.MonitorCalls(f.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	path, err := f.client.Prepare(ctx, "tokone", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Sync(ctx, f.conn); err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, c := range mon.Calls() {
		if c.Sender == f.conn.Names()[0] && c.Destination == api.ServiceNetCfg {
			members = append(members, c.Member)
		}
	}
	if want := []string{"PrepareVirtualInterface"}; !slices.Equal(members, want) {
		t.Errorf("Prepare's calls %q, want %q", members, want)
	}
	if links := f.tunLinks(t); len(links) != 1 {
		t.Errorf("TUN devices after Prepare: %v, want one", links)
	}
	if err := f.client.Destroy(ctx, path); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
	if _, err := f.client.Prepare(ctx, "bad/label", false); err == nil {
		t.Fatal("a bad label was prepared")
	}
	var devices []dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).CallWithContext(ctx, api.InterfaceNetCfg+".FetchInterfaceList", 0).Store(&devices); err != nil {
		t.Fatal(err)
	}
	if len(devices) != 0 {
		t.Errorf("device objects after a refused Prepare: %v", devices)
	}
	f.waitClean(t)
}

// The Establish answers (with the fd) before it logs the device and sends
// its NetworkChange events, which list the routes and so wait for the
// shared route table: held back here, the answer still comes, and the
// events follow once they may.
func TestEstablishAnswersBeforeAnnouncing(t *testing.T) {
	f := newFixture(t, "ncann")
	sigs := subscribe(t, f, api.NetCfgDeviceAdded)
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	beforeAnnounce = func() {
		held <- struct{}{}
		<-hold
	}
	t.Cleanup(func() { beforeAnnounce = func() {} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard
	defer cancel()
	tun, err := f.client.Open(ctx, "tokann", testCfg)
	if err != nil {
		close(hold)
		t.Fatalf("Establish while the announcement is held back: %v", err)
	}
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the announcement never began")
	}
	// The bus's own signals to the watcher (NameAcquired) reach sigs too.
	for len(sigs) > 0 {
		if s := <-sigs; s.Name == api.InterfaceNetCfg+".NetworkChange" {
			t.Errorf("NetworkChange sent while held back: %v", s.Body)
		}
	}
	close(hold)
	waitSignal(t, sigs, api.NetCfgDeviceAdded, tun.Name())
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
}
