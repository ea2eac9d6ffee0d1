package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/helper/polkit/polkittest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const polkitdPath = "/usr/lib/polkit-1/polkitd"

// TestPolkitThroughHelper runs the daemon with a real polkitd on a private
// bus (action file installed through polkittest, which serialises every
// package that does so with a machine-wide lock) and calls the helper's
// methods as unprivileged users with busctl:
//   - nobody imports a profile and starts a session: NewTunnel asks polkit
//     for session.control-own (allowed for any subject in the test copy of
//     the policy, standing in for a local active user);
//   - user daemon (uid 1), who is not on the session's ACL, tries to
//     Disconnect it: polkit's session.control-other is auth_admin_keep, so
//     without the interactive flag the helper answers
//     InteractiveAuthorizationRequired, with it (no agent can prompt)
//     Access denied; the session survives;
//   - root passes control-other (polkit authorizes root) and disconnects it.
func TestPolkitThroughHelper(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dbus-daemon")
	testenv.RequireCommand(t, "busctl")
	testenv.RequireCommand(t, "setpriv")
	if _, err := os.Stat(polkitdPath); err != nil {
		if testenv.InCI() {
			t.Fatalf("%s missing", polkitdPath)
		}
		t.Skipf("%s missing", polkitdPath)
	}
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, "polkit", "net.ovpn3go.policy"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := polkittest.AllowAny(string(shipped), polkit.ActionSessionControlOwn)
	if err != nil {
		t.Fatal(err)
	}
	polkittest.InstallPolicy(t, text)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// polkitd (user polkitd) and the clients must reach the socket.
	dir, err := os.MkdirTemp("", testenv.UniqueName("pk-helper-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bus, err := testbed.StartBus(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(5 * time.Second) })
	addr := bus.Address
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	pkCmd := exec.Command(polkitdPath, "--no-debug")
	pkCmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
	pk, err := testbed.StartProcess("polkitd", filepath.Join(dir, "polkitd.log"), pkCmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pk.Stop(5 * time.Second) })
	client, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitName := func(name string) {
		t.Helper()
		for {
			var has bool
			if err := client.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err == nil && has {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s never appeared: %s", name, pk.LogTail(20))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitName(polkit.ServiceName)
	// polkitd must know the action before the first check.
	for {
		cmd := exec.CommandContext(ctx, "pkaction", "--action-id", polkit.ActionSessionControlOther)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
		if cmd.Run() == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("polkitd never loaded the action file")
		case <-time.After(100 * time.Millisecond):
		}
	}

	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	user, dnsOpts, be := backendUser(t), testDNS(t), testBackend(t)
	go func() {
		served <- serve(sctx, t.TempDir(), be, true, dnsOpts, defaultLimits(), user, logger)
	}()
	t.Cleanup(func() {
		stop()
		<-served
	})
	waitName(api.ServiceSessions)

	busctl := func(uid int, interactive bool, args ...string) (string, error) {
		all := append([]string{"--system", "--no-pager", "--allow-interactive-authorization=" + map[bool]string{true: "yes", false: "no"}[interactive], "call"}, args...)
		out, err := busobjtest.AsUser(t, uid, addr, "busctl", all...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	objPath := regexp.MustCompile(`^o "([^"]+)"$`)
	const nobody, other = 65534, 1

	profile, err := testbed.PKI(t).Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	out, err := busctl(nobody, false, api.ServiceConfiguration, string(api.PathConfiguration), api.InterfaceConfiguration,
		"Import", "ssbb", "pk-test", profile, "false", "false")
	m := objPath.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("Import as nobody: %v: %s", err, out)
	}
	cfg := m[1]
	out, err = busctl(nobody, false, api.ServiceSessions, string(api.PathSessions), api.InterfaceSessions, "NewTunnel", "o", cfg)
	m = objPath.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("NewTunnel as nobody (control-own allowed): %v: %s", err, out)
	}
	session := m[1]

	out, err = busctl(other, false, api.ServiceSessions, session, api.InterfaceSessions, "Disconnect")
	if err == nil || !strings.Contains(out, "interactive authorization required") || !strings.Contains(out, polkit.ActionSessionControlOther) {
		t.Errorf("Disconnect of another user's session without the interactive flag: %v: %s", err, out)
	}
	out, err = busctl(other, true, api.ServiceSessions, session, api.InterfaceSessions, "Disconnect")
	if err == nil || !strings.Contains(out, "Access denied") || strings.Contains(out, "interactive authorization required") {
		t.Errorf("Disconnect of another user's session with the interactive flag and no agent: %v: %s", err, out)
	}
	// root is not on the ACL, but polkit authorizes root for control-other
	if err := client.Object(api.ServiceSessions, dbus.ObjectPath(session)).Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Errorf("Disconnect by root through polkit: %v", err)
	}
	out, err = busctl(nobody, false, api.ServiceSessions, string(api.PathSessions), api.InterfaceSessions, "FetchAvailableSessions")
	if err != nil || out != "ao 0" {
		t.Errorf("sessions after root's Disconnect: %v: %s", err, out)
	}
}
