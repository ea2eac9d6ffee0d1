package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// buildRelease builds ovpn3-helper and ovpn3-backend as release rel into
// dir, the way the Makefile stamps VERSION.
func buildRelease(t *testing.T, rel, dir string) testbed.Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := testbed.BinariesIn(dir)
	for out, pkg := range map[string]string{bin.Helper: "./helper/cmd/ovpn3-helper", bin.Backend: "./helper/cmd/ovpn3-backend"} {
		if err := testbed.BuildProgram(ctx, out, pkg, false, "-ldflags", "-X github.com/ovpn3go/ovpn3go/internal/version.Version="+rel); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// exeInode is the inode of the program process pid runs (its
// /proc/PID/exe, which stays the old file after the path is replaced).
func exeInode(t *testing.T, pid int) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestUpgradeUnderRunningHelper (issue 15 point 6): the helper's and the
// backend's binaries are replaced by another release (renamed over them,
// as dpkg does) while a session runs. That session keeps passing traffic,
// and a session started after the upgrade gets a backend of the running
// helper's release (the very file the helper opened when it started, not
// the new one at its path); the services still say the old release. The
// new release run as a backend of the old daemon refuses, naming both
// releases.
func TestUpgradeUnderRunningHelper(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "go")
	testenv.RequireCommand(t, "ping")
	cli := binaries(t).CLI
	oldRel, newRel := "upgrade-test-old", "upgrade-test-new"
	bin := buildRelease(t, oldRel, t.TempDir())
	staged := buildRelease(t, newRel, t.TempDir())
	bin.CLI = cli

	st := testbed.NewStack(t, bin, testbed.VariantA, func(o *testbed.StackOptions) {
		o.Server.Extra = []string{"duplicate-cn"}
	})
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "upgrade-before")
	importProfile(t, st, testbed.VariantA, "upgrade-after")
	before := connect(t, st, w, "upgrade-before")
	var running syscall.Stat_t
	if err := syscall.Stat(bin.Backend, &running); err != nil {
		t.Fatal(err)
	}
	if b := exeInode(t, int(backendPID(t, st, before))); b != running.Ino {
		t.Fatalf("backend before the upgrade runs inode %d, the installed backend is %d", b, running.Ino)
	}

	// The upgrade: the new release takes the helper's and the backend's
	// paths.
	for _, p := range [][2]string{{staged.Helper, bin.Helper}, {staged.Backend, bin.Backend}} {
		if err := os.Rename(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	var fi syscall.Stat_t
	if err := syscall.Stat(bin.Backend, &fi); err != nil || fi.Ino == running.Ino {
		t.Fatalf("the path still names the running backend binary (inode %d, %v)", fi.Ino, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := testbed.Ping(ctx, st.Pair.ClientNS, testbed.LANHost4, 3); err != nil {
		t.Errorf("the running session after the upgrade: %v", err)
	}
	after := connect(t, st, w, "upgrade-after")
	waitConnected(t, st, after, "starting a session after the upgrade")
	pid := backendPID(t, st, after)
	if b := exeInode(t, int(pid)); b != running.Ino {
		t.Errorf("a session started after the upgrade runs a backend of inode %d (the new file %d), not the one the helper opened, %d", b, fi.Ino, running.Ino)
	}
	var v dbus.Variant
	if err := st.Conn.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceProperties+".Get", 0,
		api.InterfaceSessions, "version").Store(&v); err != nil {
		t.Fatal(err)
	}
	old := version.Version
	version.Version = oldRel
	want := version.Service()
	version.Version = old
	if got, _ := v.Value().(string); got != want {
		t.Errorf("sessions version after the upgrade %q, want %q", got, want)
	}
	for _, p := range []dbus.ObjectPath{before, after} {
		if s := sessionStatus(t, st, p); s.Minor != api.StatusMinorConnConnected {
			t.Errorf("session %s after the upgrade: %s", p, s)
		}
	}
	if err := testbed.Ping(ctx, st.Pair.ClientNS, testbed.LANHost4, 3); err != nil {
		t.Errorf("ping with both sessions: %v", err)
	}
	transfer(t, st.Pair, 1<<20)

	// The new binary started by the old daemon as its backend refuses
	// before it reads a token, naming both releases.
	out, err := exec.CommandContext(ctx, bin.Backend, "--token-fd", "0", "--daemon-version", oldRel).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "refusing to run") ||
		!strings.Contains(string(out), `"`+oldRel+`"`) || !strings.Contains(string(out), `"`+newRel+`"`) {
		t.Errorf("new backend under the old daemon: %v, %q", err, out)
	}
	disconnectAll(ctx, t, st, w, before, after)
}
