package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// ResolvedRoot is where `make deps` unpacks the Debian systemd-resolved
// package (dpkg -x, never installed: installing it would take over the
// host's /etc/resolv.conf). OVPN3GO_RESOLVED_ROOT overrides it.
func ResolvedRoot() string {
	if r := os.Getenv("OVPN3GO_RESOLVED_ROOT"); r != "" {
		return r
	}
	return "/var/cache/ovpn3go/systemd-resolved"
}

// resolvedBusConfig lets everyone own and call anything: the bus only
// carries systemd-resolved and the test's calls to it.
const resolvedBusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
`

// Resolved is a real systemd-resolved for one test, on a private bus of its
// own, in a network namespace and a private mount namespace (its own /run,
// a passwd with the systemd-resolve user, its own resolved.conf and
// resolv.conf), so nothing of the host's resolver changes.
type Resolved struct {
	BusAddress string
	Dir        string
	Bus        *Process
	Daemon     *Process // nil until Start
	Conn       *dbus.Conn
}

// NewResolved starts the private bus systemd-resolved will join; Start
// runs the daemon. (Two steps: ovpn3-helper must be told the bus address
// before the namespace resolved runs in exists.)
func NewResolved(t testing.TB) *Resolved {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dbus-daemon")
	testenv.RequireCommand(t, "unshare")
	bin := filepath.Join(ResolvedRoot(), "lib/systemd/systemd-resolved")
	if _, err := os.Stat(bin); err != nil {
		if testenv.InCI() {
			t.Fatalf("systemd-resolved not unpacked (make deps does it): %v", err)
		}
		t.Skipf("systemd-resolved not unpacked at %s (run make deps)", ResolvedRoot())
	}
	// Not t.TempDir: the test's name could put a ',' into the bus
	// address. resolved drops to its own user before it connects, so the
	// directory is world-readable (what is in it is not secret).
	dir, err := os.MkdirTemp("", "ovpn3go-resolved-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "bus_socket")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(resolvedBusConfig, socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The bus must know resolved's user too (it looks up every peer), so
	// it sees the same passwd, in a mount namespace of its own.
	passwd, group, err := withResolveUser()
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"passwd": passwd, "group": group} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("set -e\nmount --bind %[1]s/passwd /etc/passwd\nmount --bind %[1]s/group /etc/group\nexec dbus-daemon --config-file=%[2]s --nofork\n", dir, conf)
	bus, err := StartProcess("resolved-bus", filepath.Join(dir, "dbus-daemon.log"),
		exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolved{BusAddress: "unix:path=" + socket, Dir: dir, Bus: bus}
	t.Cleanup(func() {
		if r.Conn != nil {
			r.Conn.Close()
		}
		if err := bus.Stop(5 * time.Second); err != nil {
			t.Errorf("stop resolved's bus: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if r.Conn, err = DialBus(ctx, r.BusAddress, bus); err != nil {
		t.Fatal(err)
	}
	return r
}

// Start runs systemd-resolved in network namespace ns with lanDNS as its
// global DNS servers (the "LAN resolver" every lookup goes to unless a link
// takes it), and waits until it owns org.freedesktop.resolve1.
func (r *Resolved) Start(t testing.TB, ns string, lanDNS ...netip.Addr) {
	t.Helper()
	var servers []string
	var resolvConf strings.Builder
	for _, a := range lanDNS {
		servers = append(servers, a.String())
		fmt.Fprintf(&resolvConf, "nameserver %s\n", a)
	}
	files := map[string]string{
		// No fallback servers (they would be the Internet's), no
		// multicast protocols, no DNSSEC probing of the test servers.
		"resolved.conf": "[Resolve]\nDNS=" + strings.Join(servers, " ") + "\nFallbackDNS=\nLLMNR=no\nMulticastDNS=no\nDNSSEC=no\nDNSOverTLS=no\nCache=no\n",
		"resolv.conf":   resolvConf.String(),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	etc := filepath.Join(r.Dir, "etc-systemd")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(r.Dir, "resolved.conf"), filepath.Join(etc, "resolved.conf")); err != nil {
		t.Fatal(err)
	}
	// Everything mounted here lives in the private mount namespace of
	// this one process and goes with it. The host's /etc/resolv.conf
	// (or its symlink's target) is covered so resolved never reads it.
	script := fmt.Sprintf(`set -e
real=$(readlink -f /etc/resolv.conf || true)
if [ -f "$real" ]; then mount --bind %[1]s/resolv.conf "$real"; fi
mount -t tmpfs ovpn3go-resolved /run
mkdir -p /run/systemd /run/dbus
mount --bind %[1]s/passwd /etc/passwd
mount --bind %[1]s/group /etc/group
if [ -d /etc/systemd ]; then mount --bind %[1]s/etc-systemd /etc/systemd; fi
exec %[2]s
`, r.Dir, filepath.Join(ResolvedRoot(), "lib/systemd/systemd-resolved"))
	cmd := Command(context.Background(), ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+r.BusAddress, "SYSTEMD_LOG_LEVEL=debug", "SYSTEMD_LOG_TARGET=console")
	var err error
	if r.Daemon, err = StartProcess("systemd-resolved", filepath.Join(r.Dir, "resolved.log"), cmd); err != nil {
		t.Fatal(err)
	}
	// Registered here, so it runs before the cleanup of whatever owns
	// namespace ns (created before Start).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("systemd-resolved log tail:\n%s", r.Daemon.LogTail(60))
		}
		if err := r.Daemon.Stop(5 * time.Second); err != nil {
			t.Errorf("stop systemd-resolved: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := WaitForOwner(ctx, r.Conn, "org.freedesktop.resolve1", r.Daemon); err != nil {
		t.Fatal(err)
	}
	// resolved takes its bus name before it has read the namespace's
	// links and addresses from rtnetlink; until then every lookup fails
	// with NetworkDown. Wait for a lookup that gets past that check (to
	// the LAN server, whatever it answers).
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := r.ResolveHostname(ctx, "resolved-ready.ovpn3go.test")
		cancel()
		var de dbus.Error
		if !errors.As(err, &de) || de.Name != "org.freedesktop.resolve1.NetworkDown" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-resolved still reports the network down:\n%s", r.Daemon.LogTail(40))
		}
		select {
		case <-r.Daemon.Done():
			t.Fatalf("systemd-resolved exited: %v\n%s", r.Daemon.ExitErr(), r.Daemon.LogTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// withResolveUser returns the host's passwd and group with a
// systemd-resolve user and group added (resolved drops to it) when missing.
func withResolveUser() (passwd, group string, err error) {
	p, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "", "", err
	}
	g, err := os.ReadFile("/etc/group")
	if err != nil {
		return "", "", err
	}
	passwd, group = string(p), string(g)
	used := map[string]bool{}
	for _, text := range []string{passwd, group} {
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			if f := strings.Split(sc.Text(), ":"); len(f) > 2 {
				used[f[2]] = true
			}
		}
	}
	id := 0
	for n := 999; n > 100; n-- {
		if !used[fmt.Sprint(n)] {
			id = n
			break
		}
	}
	if id == 0 {
		return "", "", fmt.Errorf("no free uid for systemd-resolve")
	}
	if !strings.Contains(passwd, "\nsystemd-resolve:") && !strings.HasPrefix(passwd, "systemd-resolve:") {
		passwd = strings.TrimRight(passwd, "\n") + fmt.Sprintf("\nsystemd-resolve:x:%d:%d:resolve:/:/usr/sbin/nologin\n", id, id)
	}
	if !strings.Contains(group, "\nsystemd-resolve:") && !strings.HasPrefix(group, "systemd-resolve:") {
		group = strings.TrimRight(group, "\n") + fmt.Sprintf("\nsystemd-resolve:x:%d:\n", id)
	}
	return passwd, group, nil
}

// ResolveHostname asks resolved, as a resolver client does, for the IPv4
// addresses of name (any link, routed by resolved's rules).
func (r *Resolved) ResolveHostname(ctx context.Context, name string) ([]netip.Addr, error) {
	var addrs []struct {
		Ifindex int32
		Family  int32
		Addr    []byte
	}
	var canonical string
	var flags uint64
	err := r.Conn.Object("org.freedesktop.resolve1", "/org/freedesktop/resolve1").CallWithContext(ctx,
		"org.freedesktop.resolve1.Manager.ResolveHostname", 0, int32(0), name, int32(2), uint64(0)).Store(&addrs, &canonical, &flags)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.Addr); ok {
			out = append(out, ip)
		}
	}
	return out, nil
}

// LinkProperty reads a property of resolved's org.freedesktop.resolve1.Link
// object for the link with that index (DNSSEC, DNSOverTLS, Domains, …).
func (r *Resolved) LinkProperty(ctx context.Context, ifindex int, name string) (dbus.Variant, error) {
	var path dbus.ObjectPath
	err := r.Conn.Object("org.freedesktop.resolve1", "/org/freedesktop/resolve1").CallWithContext(ctx,
		"org.freedesktop.resolve1.Manager.GetLink", 0, int32(ifindex)).Store(&path)
	if err != nil {
		return dbus.Variant{}, err
	}
	var v dbus.Variant
	err = r.Conn.Object("org.freedesktop.resolve1", path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		"org.freedesktop.resolve1.Link", name).Store(&v)
	return v, err
}
