// Package busobjtest gives D-Bus service tests a private, system-like bus
// that other UIDs can reach, and a way to run commands as them.
package busobjtest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// StartBus starts a private bus (testbed.BusDaemonFor: the system bus's
// policy with packaging/dbus/net.openvpn.v3.conf, a socket other UIDs can
// reach) for the test and returns its address. The daemon is stopped (by
// PID) and its files removed in t.Cleanup.
func StartBus(t testing.TB) string {
	t.Helper()
	b := testbed.BusDaemonFor(t)
	t.Cleanup(func() {
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

// DialAs connects to the bus at address as uid/gid from this process: the
// bus takes a connection's identity from the socket's peer credentials,
// which are those of the thread that connects. A goroutine locked to its
// own thread takes that identity, connects, authenticates and ends, and
// the thread ends with it (never unlocked), so the test process keeps
// root everywhere else. The connection's PID is this process's. Closed in
// t.Cleanup.
func DialAs(t testing.TB, address string, uid, gid uint32) *dbus.Conn {
	t.Helper()
	type result struct {
		conn *dbus.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		ch <- func() result {
			// Raw calls: this thread only, not the whole process.
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
				return result{err: fmt.Errorf("setgroups: %w", e)}
			}
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
				return result{err: fmt.Errorf("setresgid: %w", e)}
			}
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
				return result{err: fmt.Errorf("setresuid: %w", e)}
			}
			// Connect dials, authenticates (EXTERNAL, getuid of this
			// thread) and says Hello in this goroutine.
			c, err := dbus.Connect(address)
			return result{conn: c, err: err}
		}()
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("connect to the bus as uid %d: %v", uid, r.err)
	}
	t.Cleanup(func() { _ = r.conn.Close() })
	return r.conn
}

// Dial connects to the bus at address as this process (root in tests);
// closed in t.Cleanup.
func Dial(t testing.TB, address string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatalf("connect to the bus: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// ServerGoroutines counts this process's goroutines doing incoming D-Bus
// work: those of busobj servers and those godbus itself would start per
// incoming call (handleCall) or per signal a full channel could not take
// (deferredDeliver). Clients in the same process do not count.
func ServerGoroutines() int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "busobj.(*Server)") || strings.Contains(g, "(*Conn).handleCall") ||
			strings.Contains(g, "deferredDeliver") || strings.Contains(g, "busobj.(*signalQueue)") {
			n++
		}
	}
	return n
}
