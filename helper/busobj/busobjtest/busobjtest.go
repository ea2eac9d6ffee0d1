// Package busobjtest gives D-Bus service tests a private, system-like bus
// that other UIDs can reach, and a way to run commands as them.
package busobjtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// StartBus starts a private bus (internal/testbed's policy) for the test and
// returns its address. Unlike testbed.Bus, the socket's directory is open to
// other UIDs, for tests that run clients through AsUser. The daemon is
// stopped (by PID) and its files removed in t.Cleanup.
func StartBus(t testing.TB) string {
	t.Helper()
	testenv.RequireCommand(t, "dbus-daemon")
	// Short directory: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "ovpnbus")
	if err != nil {
		t.Fatalf("bus dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("bus dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hung daemon, not a speed assertion
	defer cancel()
	b, err := testbed.StartBus(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(5 * time.Second); err != nil {
			t.Errorf("stop bus: %v", err)
		}
		if t.Failed() {
			t.Logf("dbus-daemon output:\n%s", b.LogTail(20))
		}
	})
	return b.Address
}

// AsUser returns a command that runs name with args as the given UID/GID
// (setpriv execs in place, so the process really has that identity) with
// DBUS_SYSTEM_BUS_ADDRESS pointing at address.
func AsUser(t testing.TB, uid int, address, name string, args ...string) *exec.Cmd {
	t.Helper()
	setpriv := testenv.RequireCommand(t, "setpriv")
	all := append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", name}, args...)
	cmd := exec.Command(setpriv, all...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+address)
	return cmd
}
