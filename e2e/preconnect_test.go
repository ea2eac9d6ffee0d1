package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// preconnectStack is a stack whose helper logs the backends' debug
// events (where the connection begun ahead shows).
func preconnectStack(t *testing.T, v testbed.Variant) (*testbed.Stack, *testbed.Watcher) {
	t.Helper()
	st := testbed.NewStack(t, binaries(t), v, func(o *testbed.StackOptions) {
		o.HelperArgs = append(o.HelperArgs, "--log-level", "6")
	})
	return st, watch(t, st)
}

// helperLogged waits until the helper's log (which holds its backends'
// stderr) has the message.
func helperLogged(t *testing.T, st *testbed.Stack, msg string) {
	t.Helper()
	if err := st.Helper.WaitForLog(context.Background(), msg, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// handshakeAhead creates a session of variant v's profile, imported as
// name, on a stack of its own, and waits until its backend's handshake
// begun ahead is done.
func handshakeAhead(t *testing.T, v testbed.Variant, name string) (*testbed.Stack, *testbed.Watcher, dbus.ObjectPath, dbus.BusObject) {
	t.Helper()
	st, w := preconnectStack(t, v)
	importProfile(t, st, v, name)
	path, sess := newSession(t, st, name)
	helperLogged(t, st, "TLS handshake done")
	return st, w, path, sess
}

// connectSession sends Ready and Connect and waits for the session's
// CONN_CONNECTING and CONN_CONNECTED.
func connectSession(t *testing.T, w *testbed.Watcher, path dbus.ObjectPath, sess dbus.BusObject) {
	t.Helper()
	for _, m := range []string{"Ready", "Connect"} {
		if err := sessCall(sess, m).Err; err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	waitSignal(t, w, 60*time.Second, "CONN_CONNECTING", isPathStatus(path, api.StatusMinorConnConnecting))
	waitSignal(t, w, 60*time.Second, "CONN_CONNECTED", isPathStatus(path, api.StatusMinorConnConnected))
}

func isPathStatus(path dbus.ObjectPath, minor api.StatusMinor) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool { return s.Path == path && isStatus(api.StatusMajorConnection, minor)(s) }
}

// The backend begins the connection when the session is created (the
// helper's default): the TLS handshake runs before the Connect, while a
// front-end sees nothing of it; the Connect adopts it.
func TestPreconnectAdopted(t *testing.T) {
	t.Parallel()
	st, w, path, sess := handshakeAhead(t, testbed.VariantF, "e2e-preconnect")

	// Before the Connect: no connection status, the status and the last
	// log line as without the early handshake, the server has no
	// key-method 2 (no peer info) from it.
	for _, s := range w.Signals() {
		if s.Path == path && s.Name == api.InterfaceSessions+".StatusChange" && len(s.Body) == 3 &&
			s.Body[0] == uint32(api.StatusMajorConnection) && s.Body[1].(uint32) >= uint32(api.StatusMinorConnInit) {
			t.Errorf("before the Connect: %s", testbed.FormatSignal(s))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if status, _ := property(ctx, t, st.Conn, path, "status").([]any); len(status) != 3 || status[1] != uint32(api.StatusMinorCfgRequireUser) {
		t.Errorf("status before the Connect: %v, want CFG_REQUIRE_USER", status)
	}
	if ll := fmt.Sprint(property(ctx, t, st.Conn, path, "last_log")); strings.Contains(strings.ToLower(ll), "handshake") {
		t.Errorf("last_log before the Connect: %s", ll)
	}
	if strings.Contains(st.Server.Log(), "peer info") {
		t.Errorf("the server got key-method 2 before the Connect:\n%s", st.Server.LogTail(20))
	}

	// The credentials given after the handshake go with key-method 2.
	provideAll(t, sess, map[string]string{"username": testbed.TestUser, "password": testbed.TestPass})
	connectSession(t, w, path, sess)
	helperLogged(t, st, "connection begun ahead adopted")
	if n := strings.Count(st.Helper.Log(), "TLS handshake done"); n != 1 {
		t.Errorf("the backend ran %d TLS handshakes, want the one begun ahead", n)
	}
	if err := sessCall(sess, "Disconnect").Err; err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	waitClean(t, st.Pair, 15*time.Second)
}

// A connection begun ahead that expired (a third of the hand-window) or
// failed (the server was down) is replaced at the Connect by a new one,
// which connects.
func TestPreconnectReplaced(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"expired", "failed"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			st, w := preconnectStack(t, testbed.VariantA)
			name := "e2e-preconnect-" + how
			if how == "expired" {
				importProfile(t, st, testbed.VariantA, name, "hand-window 6")
			} else {
				importProfile(t, st, testbed.VariantA, name)
				if err := st.Server.Stop(5 * time.Second); err != nil {
					t.Logf("server stop: %v", err)
				}
			}
			path, sess := newSession(t, st, name)
			helperLogged(t, st, "engine begun ahead returned")
			if how == "failed" {
				testbed.ServerWith(t, st.Pair, testbed.VariantA, testbed.ServerOptions{PKI: st.PKI})
			}
			connectSession(t, w, path, sess)
			helperLogged(t, st, "connection begun ahead discarded")
			want := 2
			if how == "failed" {
				want = 1 // the first never got an answer
			}
			if n := strings.Count(st.Helper.Log(), "TLS handshake done"); n != want {
				t.Errorf("the backend ran %d TLS handshakes, want %d", n, want)
			}
		})
	}
}

// Disconnect before the Connect ends the connection begun ahead with the
// session: the backend exits, nothing is left in the namespace.
func TestPreconnectDisconnectBeforeConnect(t *testing.T) {
	t.Parallel()
	st, w, path, sess := handshakeAhead(t, testbed.VariantA, "e2e-preconnect-disconnect")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, _ := property(ctx, t, st.Conn, path, "backend_pid").(uint32)
	if pid == 0 {
		t.Fatal("no backend_pid")
	}
	if err := sessCall(sess, "Disconnect").Err; err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	helperLogged(t, st, "connection begun ahead discarded")
	for _, s := range w.Signals() {
		if s.Path == path && isStatus(api.StatusMajorConnection, api.StatusMinorConnConnecting)(s) {
			t.Errorf("CONN_CONNECTING without a Connect: %s", testbed.FormatSignal(s))
		}
	}
	deadline := time.Now().Add(30 * time.Second) // a hung backend, not a speed check
	for syscall.Kill(int(pid), 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still runs after Disconnect", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitClean(t, st.Pair, 15*time.Second)
}
