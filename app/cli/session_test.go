package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr/token"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

func TestSessionArgumentErrors(t *testing.T) {
	for _, args := range [][]string{
		{"session-start"},
		{"session-start", "--config", "a", "--config-path", "/x"},
		{"session-manage", "--config", "a"},
		{"session-manage", "--config", "a", "--disconnect", "--restart"},
		{"session-stats", "extra"},
		{"sessions-list", "extra"},
		{"session-start", "--no-such-flag"},
	} {
		if _, err := runCmd(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
}

func TestStatsOrderAndServerFormat(t *testing.T) {
	got := sortedStatKeys(map[string]int64{"TUN_BYTES_IN": 1, "ZETA": 1, "BYTES_OUT": 1, "BYTES_IN": 1, "ALPHA": 1})
	if want := []string{"BYTES_IN", "BYTES_OUT", "TUN_BYTES_IN", "ALPHA", "ZETA"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("sortedStatKeys = %v, want %v", got, want)
	}
	if s := (client.Endpoint{Proto: "udp", IP: "2001:2::1", Port: 1194}).String(); s != "udp:[2001:2::1]:1194" {
		t.Errorf("Endpoint = %q", s)
	}
	if s := (client.Endpoint{Proto: "tcp", IP: "198.18.0.1"}).String(); s != "tcp:198.18.0.1" {
		t.Errorf("Endpoint without port = %q", s)
	}
}

type cliProfiles struct{ cm *configmgr.Service }

func (p cliProfiles) UseProfile(path dbus.ObjectPath, uid uint32) (sessionmgr.ProfileInfo, error) {
	info, ok := p.cm.Lookup(path)
	if !ok || !info.CanUse(uid) {
		return sessionmgr.ProfileInfo{}, api.Error(api.DomainGDBusPP, "Access to the configuration profile is denied.")
	}
	return sessionmgr.ProfileInfo{Name: info.Name, Owner: info.Owner, TransferOwnerSession: info.TransferOwnerSession}, nil
}

// startSessionStack runs the configuration and session managers on a
// private bus, with a freshly built ovpn3-helper as the backend binary.
func startSessionStack(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "go")
	// The backend is started from bin as the backend user, so its directory
	// must be reachable by that user (t.TempDir is 0700).
	binDir, err := os.MkdirTemp("", "ovpn3-cli-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(binDir) })
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "ovpn3-backend")
	if err := testbed.BuildProgram(context.Background(), bin, "./helper/cmd/ovpn3-backend", false); err != nil {
		t.Fatal(err)
	}
	addr := busobjtest.StartBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := busobj.Connect(context.Background(), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cm := configmgr.New(t.TempDir(), logger)
	if err := cm.Export(srv); err != nil {
		t.Fatal(err)
	}
	logs := logsvc.New(logger)
	if err := logs.Export(srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(logs.Close)
	testenv.EnsureBackendUser(t)
	beUser, err := privsep.LookupUser(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessionmgr.New(sessionmgr.Options{
		Conn: srv.Conn(), Logger: logger, Profiles: cliProfiles{cm}, Logs: logs,
		Launcher: &sessionmgr.ExecLauncher{Path: bin, Logger: logger, User: &beUser,
			Args: []string{"--token-fd", strconv.Itoa(token.FD)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	if err := m.Export(srv); err != nil {
		t.Fatal(err)
	}
	// Who the backends are, for the other services' access checks (as
	// ovpn3-helper wires them).
	cm.SetBackends(m.BackendOf)
	logs.SetBackends(m.BackendCaller)
	for _, n := range []string{api.ServiceLog, api.ServiceConfiguration, api.ServiceSessions} {
		if err := srv.RequestName(n); err != nil {
			t.Fatal(err)
		}
	}
}

// importVariantA imports the test bed's variant a profile pointing at
// remote.
func importVariantA(t *testing.T, name, remote string) {
	t.Helper()
	text, err := testbed.PKI(t).Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	text = regexp.MustCompile(`(?m)^remote .*$`).ReplaceAllString(text, "remote "+remote)
	file := filepath.Join(t.TempDir(), name+".ovpn")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, "config-import", "--config", file, "--name", name); err != nil {
		t.Fatalf("config-import: %v\n%s", err, out)
	}
}

func TestSessionCommands(t *testing.T) {
	startSessionStack(t)
	if out, err := runCmd(t, "sessions-list"); err != nil || !strings.Contains(out, "No sessions available") {
		t.Errorf("sessions-list with no session: %q, %v", out, err)
	}
	// A UDP socket nobody answers on: the connection attempt fails.
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	importVariantA(t, "cli-test", fmt.Sprintf("127.0.0.1 %d", sink.LocalAddr().(*net.UDPAddr).Port))

	// Start in the background: the session exists while the engine tries.
	out, err := runCmd(t, "session-start", "--config", "cli-test", "--background")
	if err != nil {
		t.Fatalf("session-start --background: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Session path: /net/openvpn/v3/sessions/") {
		t.Errorf("session-start output:\n%s", out)
	}
	out, err = runCmd(t, "sessions-list")
	if err != nil || !strings.Contains(out, "Config name: cli-test") || !strings.Contains(out, "Status: Connection, ") {
		t.Errorf("sessions-list: %v\n%s", err, out)
	}
	checkSessionACL(t)
	checkLogFollows(t)
	checkServiceCommands(t)
	if out, err := runCmd(t, "session-stats", "--config", "cli-test"); err != nil || !strings.Contains(out, "Connection statistics:") {
		t.Errorf("session-stats: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "session-stats", "--config", "nope"); err == nil {
		t.Errorf("session-stats of an unknown profile succeeded:\n%s", out)
	}
	if out, err := runCmd(t, "session-manage", "--config", "cli-test", "--disconnect"); err != nil || !strings.Contains(out, "Session closed") {
		t.Errorf("session-manage --disconnect: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "sessions-list"); err != nil || !strings.Contains(out, "No sessions available") {
		t.Errorf("sessions-list after disconnect: %q, %v", out, err)
	}

	// In the foreground session-start waits and reports the failure.
	out, err = runCmd(t, "session-start", "--config", "cli-test", "--timeout", "2m")
	if err == nil || !strings.Contains(err.Error(), "connection failed: ") {
		t.Errorf("session-start against a silent server: err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "Connection, Client connecting") {
		t.Errorf("session-start printed no progress:\n%s", out)
	}
	if out, err := runCmd(t, "sessions-list"); err != nil || !strings.Contains(out, "No sessions available") {
		t.Errorf("sessions-list after the failure: %q, %v", out, err)
	}
}

// checkSessionACL runs session-acl against the session of "cli-test".
func checkSessionACL(t *testing.T) {
	t.Helper()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--show"}, "Public access: no"},
		{[]string{"--grant", "65534"}, "Granted access to"},
		{[]string{"--show"}, "Users granted access: 1 user(s)"},
		{[]string{"--revoke", "65534"}, "Revoked access from"},
		{[]string{"--public-access", "true", "--allow-log-access", "true"}, "Log access for granted users set to true"},
		{[]string{"--show"}, "Users granted log access: yes"},
		{[]string{"--public-access", "false", "--allow-log-access", "false"}, "Public access set to false"},
	} {
		out, err := runCmd(t, append([]string{"session-acl", "--config", "cli-test"}, c.args...)...)
		if err != nil || !strings.Contains(out, c.want) {
			t.Errorf("session-acl %v: %v\n%s", c.args, err, out)
		}
	}
	if out, err := runCmd(t, "session-acl", "--config", "cli-test", "--revoke", "65534"); err == nil || !strings.Contains(describeError(err), "UID not granted access") {
		t.Errorf("session-acl --revoke of a user without access: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "session-acl", "--config", "cli-test"); !errors.Is(err, errUsage) {
		t.Errorf("session-acl without an action: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkLogFollows runs `ovpn3 log` on the session of "cli-test" while the
// session is paused over D-Bus: the forwarded status changes are printed.
func checkLogFollows(t *testing.T) {
	t.Helper()
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var paths []dbus.ObjectPath
	if err := conn.Object(api.ServiceSessions, api.PathSessions).Call(api.InterfaceSessions+".LookupConfigName", 0, "cli-test").Store(&paths); err != nil || len(paths) != 1 {
		t.Fatalf("LookupConfigName: %v %v", paths, err)
	}
	var buf lockedBuffer
	old := stdout
	stdout = &buf
	defer func() { stdout = old }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- commands["log"].run(ctx, []string{"--config", "cli-test", "--log-level", "6"}) }()
	var fw []dbus.ObjectPath
	for deadline := time.Now().Add(20 * time.Second); len(fw) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("log never subscribed (log_forwards empty); output:\n%s", buf.String())
		}
		_ = conn.Object(api.ServiceSessions, paths[0]).Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "log_forwards").Store(&fw)
	}
	if err := conn.Object(api.ServiceSessions, paths[0]).Call(api.InterfaceSessions+".Pause", 0, "cli test").Err; err != nil {
		t.Errorf("Pause: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(buf.String(), "Client connection paused"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("log did not print the pause; output:\n%s", buf.String())
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("log: %v", err)
	}
	if !strings.Contains(buf.String(), "[STATUS] Connection, Client pausing connection: Reason: cli test") {
		t.Errorf("log output:\n%s", buf.String())
	}
	if err := conn.Object(api.ServiceSessions, paths[0]).Call(api.InterfaceSessions+".Resume", 0).Err; err != nil {
		t.Errorf("Resume: %v", err)
	}
}

// checkServiceCommands runs openvpn3-admin's service commands against the
// stack of TestSessionCommands (no netcfg service in it).
func checkServiceCommands(t *testing.T) {
	t.Helper()
	out, err := runCmd(t, "version", "--services")
	if err != nil {
		t.Fatalf("version --services: %v", err)
	}
	for _, want := range []string{
		"ovpn3 (ovpn3go) " + version.Version,
		api.ServiceConfiguration + ":", api.ServiceSessions + ":", api.ServiceLog + ":",
		version.Service(),
		api.ServiceNetCfg + ":",
		"(not running)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("version --services lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, " "+version.Service()+"\n"); n != 3 {
		t.Errorf("version --services: %d services report %s, want 3:\n%s", n, version.Service(), out)
	}
	out, err = runCmd(t, "sessionmgr-service", "--list-sessions-verbose")
	if err != nil || !strings.Contains(out, "Session: /net/openvpn/v3/sessions/") || !strings.Contains(out, "Config: cli-test") ||
		!strings.Contains(out, "Status: Connection, ") {
		t.Errorf("sessionmgr-service --list-sessions-verbose: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "log-service", "--log-level", "5", "--timestamp", "true"); err != nil ||
		!strings.Contains(out, "Current log level: 5") || !strings.Contains(out, "Log timestamps: enabled") {
		t.Errorf("log-service --log-level 5 --timestamp true: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "log-service", "--list-subscriptions"); err != nil || !strings.Contains(out, api.InterfaceBackends) {
		t.Errorf("log-service --list-subscriptions (a backend is attached): %v\n%s", err, out)
	}
	if _, err := runCmd(t, "log-service", "--config-show"); err == nil || !strings.Contains(err.Error(), "has no configuration file") {
		t.Errorf("log-service --config-show: %v", err)
	}
	if _, err := runCmd(t, "netcfg-service", "--list-subscribers"); err == nil {
		t.Error("netcfg-service without a netcfg service succeeded")
	}
	// session-manage --log-level shows the level; --log-level=N sets it.
	if out, err := runCmd(t, "session-manage", "-c", "cli-test", "--log-level=2"); err != nil ||
		!strings.Contains(out, "Current log level: ") || !strings.Contains(out, "New log level: 2") {
		t.Errorf("session-manage --log-level=2: %v\n%s", err, out)
	}
	if out, err := runCmd(t, "session-manage", "-c", "cli-test", "--log-level"); err != nil || out != "Current log level: 2\n" {
		t.Errorf("session-manage --log-level: %v\n%s", err, out)
	}
	if _, err := runCmd(t, "session-manage", "-c", "cli-test", "--log-level=9"); !errors.Is(err, errUsage) {
		t.Errorf("session-manage --log-level=9: %v", err)
	}
	if _, err := runCmd(t, "netcfg-service"); !errors.Is(err, errUsage) {
		t.Errorf("netcfg-service without an action: %v", err)
	}
}
