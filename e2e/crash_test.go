package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// restartHelper starts ovpn3-helper again in the stack's client namespace
// with the same state directory (a new log file, so "ready" is this run's)
// and makes it the stack's helper.
func restartHelper(t *testing.T, st *testbed.Stack, n int) {
	t.Helper()
	cmd := testbed.Command(context.Background(), st.Pair.ClientNS, st.Bin.Helper,
		"--state-dir", filepath.Join(st.Dir, "state"), "--resolv-conf", st.ResolvConf)
	cmd.Env = st.Env()
	p, err := testbed.StartProcess("ovpn3-helper", filepath.Join(st.Dir, fmt.Sprintf("helper-%d.log", n)), cmd)
	if err != nil {
		t.Fatal(err)
	}
	st.Helper = p
	if err := p.WaitForLog(context.Background(), "ovpn3-helper ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// killHelper SIGKILLs the stack's helper and waits until it is gone.
func killHelper(t *testing.T, st *testbed.Stack) {
	t.Helper()
	if err := st.Helper.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.Helper.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not die of SIGKILL")
	}
}

func killPID(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		t.Fatalf("kill %d: %v", pid, err)
	}
	// Not our child (the helper's): wait until /proc says it is gone or a
	// zombie nobody reaps any more.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || containsState(b, 'Z') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containsState reads the state field of /proc/PID/stat.
func containsState(stat []byte, state byte) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == state
		}
	}
	return false
}

// TestCrashLeavesNothing: a connected session with redirect-gateway,
// block-ipv6 and pushed DNS; the backend and the helper are SIGKILLed at
// several points, and once the helper has started again the client
// namespace's links, IPv4 and IPv6 routes (all tables), rules and its
// resolv.conf (the stack's own) equal their state before the test.
func TestCrashLeavesNothing(t *testing.T) {
	t.Parallel()
	st := routingStack(t)
	ns := st.Pair.ClientNS
	resolvConf, err := os.ReadFile(st.ResolvConf)
	if err != nil {
		t.Fatal(err)
	}
	start := netSnapshot(t, ns)
	check := func(when string) {
		t.Helper()
		wantSnapshot(t, ns, start, when)
		got, err := os.ReadFile(st.ResolvConf)
		if err != nil || string(got) != string(resolvConf) {
			t.Errorf("%s resolv.conf is %q (%v), want %q", when, got, err, resolvConf)
		}
	}
	connected := func() int {
		t.Helper()
		// Profiles imported without --persistent die with the helper.
		var cfgs []dbus.ObjectPath
		if err := st.Conn.Object(api.ServiceConfiguration, api.PathConfiguration).CallWithContext(context.Background(),
			api.InterfaceConfiguration+".LookupConfigName", 0, "crash").Store(&cfgs); err != nil {
			t.Fatal(err)
		}
		if len(cfgs) == 0 {
			importProfile(t, st, testbed.VariantI, "crash", "redirect-gateway def1", "block-ipv6")
		}
		path, dev := startNamed(t, st, "crash")
		if d := routeDev(t, ns, netHost4); d != dev {
			t.Fatalf("the session does not redirect: %s goes to %s", netHost4, d)
		}
		if got, _ := os.ReadFile(st.ResolvConf); !strings.Contains(string(got), testbed.TunnelServer4) {
			t.Fatalf("the pushed DNS server is not in resolv.conf while connected:\n%s", got)
		}
		pid := backendPID(t, st, path)
		if pid == 0 {
			t.Fatal("no backend_pid")
		}
		return int(pid)
	}

	// The backend alone dies: the running helper cleans up at once.
	t.Run("backend only", func(t *testing.T) {
		killPID(t, connected())
		check("after the backend was SIGKILLed (helper running),")
	})
	for i, point := range []struct {
		name string
		kill func(t *testing.T, backend int)
	}{
		{"backend then helper", func(t *testing.T, backend int) {
			killPID(t, backend)
			killHelper(t, st)
		}},
		{"helper then backend", func(t *testing.T, backend int) {
			killHelper(t, st)
			killPID(t, backend)
		}},
		{"helper only, backend alive at the restart", func(t *testing.T, backend int) {
			killHelper(t, st)
			t.Cleanup(func() { killPID(t, backend) })
		}},
		{"helper during disconnect", func(t *testing.T, backend int) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = st.CLI(ctx, "session-manage", "--config", "crash", "--disconnect")
			}()
			// Kill as soon as the session leaves CONN_CONNECTED, i.e. the
			// backend has started to tear down.
			path, err := st.SessionByConfig(ctx, "crash")
			if err != nil {
				t.Fatal(err)
			}
			for ctx.Err() == nil {
				var v dbus.Variant
				err := st.Conn.Object(api.ServiceSessions, path).CallWithContext(ctx, api.InterfaceProperties+".Get", 0,
					api.InterfaceSessions, "status").Store(&v)
				if f, ok := v.Value().([]any); err != nil || !ok || len(f) != 3 || f[1] != uint32(api.StatusMinorConnConnected) {
					break
				}
			}
			killHelper(t, st)
			killPID(t, backend)
			<-done
		}},
	} {
		t.Run(point.name, func(t *testing.T) {
			backend := connected()
			point.kill(t, backend)
			restartHelper(t, st, i+2)
			check("after a crash (" + point.name + ") and a helper restart,")
		})
	}
}
