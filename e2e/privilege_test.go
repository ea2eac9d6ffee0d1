package e2e

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// procStatus reads /proc/PID/status into key → value.
func procStatus(t *testing.T, pid uint32) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("backend %d: %v", pid, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// checkUnprivileged: the backend runs as the backend user, with every
// capability set empty, no-new-privileges, in its own process group and
// session, and its command line does not carry the session token.
func checkUnprivileged(t *testing.T, pid uint32) {
	t.Helper()
	u, err := user.Lookup(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	st := procStatus(t, pid)
	t.Logf("backend %d: Uid %s Gid %s Groups %q CapEff %s CapPrm %s CapInh %s CapAmb %s CapBnd %s NoNewPrivs %s",
		pid, st["Uid"], st["Gid"], st["Groups"], st["CapEff"], st["CapPrm"], st["CapInh"], st["CapAmb"], st["CapBnd"], st["NoNewPrivs"])
	for _, k := range []string{"Uid", "Gid"} {
		want := u.Uid
		if k == "Gid" {
			want = u.Gid
		}
		for _, id := range strings.Fields(st[k]) {
			if id == "0" || id != want {
				t.Errorf("backend %d: %s %q, want %s (%s) everywhere", pid, k, st[k], want, testenv.BackendUser)
				break
			}
		}
	}
	if st["Groups"] != "" {
		t.Errorf("backend %d: supplementary groups %q", pid, st["Groups"])
	}
	for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"} {
		if st[k] != "0000000000000000" {
			t.Errorf("backend %d: %s %s, want all zero", pid, k, st[k])
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("backend %d: NoNewPrivs %q", pid, st["NoNewPrivs"])
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(f) < 4 || f[2] != strconv.Itoa(int(pid)) || f[3] != strconv.Itoa(int(pid)) {
		t.Errorf("backend %d: process group/session %v, want its own", pid, f[2:4])
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if filepath.Base(args[0]) != "ovpn3-backend" || !strings.Contains(string(cmdline), "--token-fd") {
		t.Errorf("backend %d: command line %q", pid, args)
	}
}

func backendPID(t *testing.T, st *testbed.Stack, path dbus.ObjectPath) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := st.SessionProperty(ctx, path, "backend_pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := v.Value().(uint32)
	return pid
}

// waitConnected waits until session path is connected again after what
// (resume, restart, …).
func waitConnected(t *testing.T, st *testbed.Stack, path dbus.ObjectPath, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a hung session, not a speed check
	for sessionStatus(t, st, path).Minor != api.StatusMinorConnConnected {
		if time.Now().After(deadline) {
			t.Fatalf("not connected after %s: %s", what, sessionStatus(t, st, path))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBackendRunsUnprivileged (issue 9): a connected backend runs as the
// backend user with no capabilities at all and no-new-privileges, and the
// session still does everything: traffic, the server's renegotiation,
// pause/resume, restart (reconnect) and an automatic restart after the
// backend is killed — whose new backend is just as unprivileged.
func TestBackendRunsUnprivileged(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	testenv.RequireCommand(t, "ping")
	st := testbed.NewStack(t, bin, testbed.VariantA, func(o *testbed.StackOptions) {
		o.Server.Extra = append(o.Server.Extra, "reneg-sec 8", "hand-window 4")
	})
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-unpriv")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	setOverride(t, st, "e2e-unpriv", "automatic-restart", "on-failure")
	path := connect(t, st, w, "e2e-unpriv")
	pid := backendPID(t, st, path)
	checkUnprivileged(t, pid)
	transfer(t, st.Pair, 4<<20)

	// the server renegotiates every 8 s
	if err := st.Server.WaitForLog(ctx, "soft reset", 40*time.Second); err != nil {
		t.Errorf("no renegotiation: %v", err)
	}
	if err := testbed.Ping(ctx, st.Pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping after the renegotiation: %v", err)
	}
	if sessionStatus(t, st, path).Minor != api.StatusMinorConnConnected || backendPID(t, st, path) != pid {
		t.Errorf("session after the renegotiation: %s, backend %d (was %d)", sessionStatus(t, st, path), backendPID(t, st, path), pid)
	}

	for _, step := range []string{"--pause", "--resume", "--restart"} {
		if out, err := st.CLI(ctx, "session-manage", "--path", string(path), step); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, out)
		}
		if step == "--pause" {
			if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorConnPaused {
				t.Errorf("status after pause: %s", s)
			}
			continue
		}
		waitConnected(t, st, path, step)
		transfer(t, st.Pair, 1<<20)
	}
	checkUnprivileged(t, pid)

	// automatic restart: a new backend, as unprivileged as the first
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p := backendPID(t, st, path); p != pid && sessionStatus(t, st, path).Minor == api.StatusMinorConnConnected {
			pid = p
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s not restarted after its backend was killed", path)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkUnprivileged(t, pid)
	transfer(t, st.Pair, 1<<20)
	disconnectAndWait(ctx, t, st, w, path, "--path", string(path))
}

// clientNetState is the client namespace's links, addresses and routes.
func clientNetState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-o", "link", "show"}, {"-o", "addr", "show"}, {"route", "show", "table", "all"},
		{"-6", "route", "show", "table", "all"}, {"rule", "show"}} {
		out, err := testbed.Run(context.Background(), ns, "ip", args...)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(out)
	}
	// packet and byte counters change with traffic; drop them
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		if i := strings.Index(l, "link/"); i >= 0 && strings.Contains(l, "state") {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// refused: the call failed with the bus policy's or the service's
// authorization error, not with anything that means it got to work.
func refused(err error) bool {
	if err == nil {
		return false
	}
	if api.IsErrorName(err, "org.freedesktop.DBus.Error.AccessDenied") {
		return true
	}
	_, text, _ := api.ParseError(err)
	return api.IsDomain(err, api.DomainGDBusPP) && (strings.HasPrefix(text, "Authorization failed") || strings.HasPrefix(text, "Access denied") ||
		strings.HasPrefix(text, "Access to the configuration profile is denied")) // the configuration manager's (upstream's) text
}

// TestStrangerRefused (issue 9): a user with no business there calls every
// method of netcfg (manager and the session's device), of the log service
// and of the session's backend, and sets and reads what it should not,
// with arguments that would work for the owner: each is refused, no
// device, address or route appears or goes, and the owner's session keeps
// working.
func TestStrangerRefused(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	testenv.RequireCommand(t, "ping")
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-stranger")
	path := connect(t, st, w, "e2e-stranger")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pid := backendPID(t, st, path)
	v, err := st.SessionProperty(ctx, path, "device_path")
	if err != nil {
		t.Fatal(err)
	}
	device, _ := v.Value().(dbus.ObjectPath)
	if !strings.HasPrefix(string(device), string(api.PathNetCfg)+"/") {
		t.Fatalf("device_path %q", device)
	}
	v, err = st.SessionProperty(ctx, path, "config_path")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := v.Value().(dbus.ObjectPath)
	before := clientNetState(t, st.Pair.ClientNS)

	stranger := busobjtest.DialAs(t, st.Bus.Address, 65534, 65534)
	backend := api.BackendBusName(pid)
	nc, lg, be := api.InterfaceNetCfg, api.InterfaceLog, api.InterfaceBackends
	type call struct {
		dest   string
		path   dbus.ObjectPath
		method string
		args   []any
	}
	calls := []call{
		// netcfg manager
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".CreateVirtualInterface", []any{"stranger"}},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".PrepareVirtualInterface", []any{"strangerprep", false}},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".FetchInterfaceList", nil},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".ProtectSocket", []any{testbed.ServerIP4, false, device}},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".DcoAvailable", nil},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".Cleanup", nil},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".NotificationSubscribe", []any{uint32(0xffff)}},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".NotificationUnsubscribe", []any{""}},
		{api.ServiceNetCfg, api.PathNetCfg, nc + ".NotificationSubscriberList", nil},
		{api.ServiceNetCfg, api.PathNetCfg, api.InterfaceProperties + ".Set", []any{nc, "log_level", dbus.MakeVariant(uint32(6))}},
		// the session's netcfg device
		{api.ServiceNetCfg, device, nc + ".AddIPAddress", []any{"198.19.77.2", uint32(24), "", false}},
		{api.ServiceNetCfg, device, nc + ".SetRemoteAddress", []any{"198.18.0.77", false}},
		{api.ServiceNetCfg, device, nc + ".AddNetworks", []any{[]struct {
			A string
			B uint32
			C int32
			D bool
			E bool
		}{{"198.19.99.0", 24, -1, false, false}, {"0.0.0.0", 1, -1, false, false}}}},
		{api.ServiceNetCfg, device, nc + ".AddDNS", []any{[]string{"192.0.2.99"}}},
		{api.ServiceNetCfg, device, nc + ".AddDNSSearch", []any{[]string{"stranger.example"}}},
		{api.ServiceNetCfg, device, nc + ".SetDNSSEC", []any{"no"}},
		{api.ServiceNetCfg, device, nc + ".SetDNSTransport", []any{"plain"}},
		{api.ServiceNetCfg, device, nc + ".EnableDCO", []any{"strangerdco"}},
		{api.ServiceNetCfg, device, nc + ".Prepare", []any{false}},
		{api.ServiceNetCfg, device, nc + ".Describe", []any{[]struct {
			Name string
			Args []dbus.Variant
		}{{"reroute_ipv4", []dbus.Variant{dbus.MakeVariant(true)}}}}},
		{api.ServiceNetCfg, device, nc + ".Establish", nil},
		{api.ServiceNetCfg, device, nc + ".EstablishWith", []any{[]struct {
			Name string
			Args []dbus.Variant
		}{{"reroute_ipv4", []dbus.Variant{dbus.MakeVariant(true)}}}}},
		{api.ServiceNetCfg, device, nc + ".Disable", nil},
		{api.ServiceNetCfg, device, nc + ".Destroy", nil},
		{api.ServiceNetCfg, device, api.InterfaceProperties + ".Set", []any{nc, "mtu", dbus.MakeVariant(uint16(1280))}},
		{api.ServiceNetCfg, device, api.InterfaceProperties + ".Set", []any{nc, "reroute_ipv4", dbus.MakeVariant(true)}},
		{api.ServiceNetCfg, device, api.InterfaceProperties + ".Set", []any{nc, "dns_scope", dbus.MakeVariant("global")}},
		{api.ServiceNetCfg, device, api.InterfaceProperties + ".Get", []any{nc, "device_name"}},
		// the session's profile (what only its backend may read)
		{api.ServiceConfiguration, cfg, api.InterfaceConfiguration + ".FetchForBackend", nil},
		// log service
		{api.ServiceLog, api.PathLog, lg + ".Attach", []any{be}},
		{api.ServiceLog, api.PathLog, lg + ".AssignSession", []any{path, be}},
		{api.ServiceLog, api.PathLog, lg + ".Detach", []any{be}},
		{api.ServiceLog, api.PathLog, lg + ".GetSubscriberList", nil},
		{api.ServiceLog, api.PathLog, lg + ".ProxyLogEvents", []any{stranger.Names()[0], path}},
		{api.ServiceLog, api.PathLog, api.InterfaceProperties + ".Set", []any{lg, "log_level", dbus.MakeVariant(uint32(0))}},
		// the session's backend
		{backend, api.PathBackendSession, be + ".RegistrationConfirmation", []any{"token", path, cfg}},
		{backend, api.PathBackendSession, be + ".Ping", nil},
		{backend, api.PathBackendSession, be + ".Ready", nil},
		{backend, api.PathBackendSession, be + ".Connect", nil},
		{backend, api.PathBackendSession, be + ".Pause", []any{"stranger"}},
		{backend, api.PathBackendSession, be + ".Resume", nil},
		{backend, api.PathBackendSession, be + ".Restart", nil},
		{backend, api.PathBackendSession, be + ".Disconnect", nil},
		{backend, api.PathBackendSession, be + ".ForceShutdown", nil},
		{backend, api.PathBackendSession, be + ".UserInputQueueGetTypeGroup", nil},
		{backend, api.PathBackendSession, be + ".UserInputQueueFetch", []any{uint32(1), uint32(1), uint32(0)}},
		{backend, api.PathBackendSession, be + ".UserInputQueueCheck", []any{uint32(1), uint32(1)}},
		{backend, api.PathBackendSession, be + ".UserInputProvide", []any{uint32(1), uint32(1), uint32(0), "x"}},
		{backend, api.PathBackendSession, api.InterfaceProperties + ".Get", []any{be, "statistics"}},
		{backend, api.PathBackendSession, api.InterfaceProperties + ".Set", []any{be, "log_level", dbus.MakeVariant(uint32(6))}},
	}
	for _, c := range calls {
		err := stranger.Object(c.dest, c.path).CallWithContext(ctx, c.method, 0, c.args...).Err
		if !refused(err) {
			t.Errorf("stranger %s on %s %s: %v, want refused", c.method, c.dest, c.path, err)
		}
	}
	if after := clientNetState(t, st.Pair.ClientNS); after != before {
		t.Errorf("the client namespace changed after the stranger's calls:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// the owner's session keeps working, with the same backend
	if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorConnConnected {
		t.Errorf("session after the stranger: %s", s)
	}
	if p := backendPID(t, st, path); p != pid {
		t.Errorf("backend %d replaced by %d", pid, p)
	}
	if err := testbed.Ping(ctx, st.Pair.ClientNS, testbed.LANHost4, 3); err != nil {
		t.Errorf("ping after the stranger: %v", err)
	}
	transfer(t, st.Pair, 1<<20)
	disconnectAndWait(ctx, t, st, w, path, "--path", string(path))
}
