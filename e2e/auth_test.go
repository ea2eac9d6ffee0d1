package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// startWaitingSession starts a session the way a front-end that then dies
// does: NewTunnel and Ready on a connection of its own, which is closed
// while the session waits for credentials. It returns the session path and
// its backend PID (the session-auth request id).
func startWaitingSession(t *testing.T, st *testbed.Stack, name string) (dbus.ObjectPath, uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := configPath(t, st, name)
	fe, err := dbus.Connect(st.Bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	var path dbus.ObjectPath
	if err := fe.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceSessions+".NewTunnel", 0, cfg).Store(&path); err != nil {
		fe.Close()
		t.Fatalf("NewTunnel: %v", err)
	}
	err = fe.Object(api.ServiceSessions, path).CallWithContext(ctx, api.InterfaceSessions+".Ready", 0).Err
	if !api.IsDomain(err, api.DomainReady) || api.ErrorText(err) != "Missing user credentials" {
		t.Errorf("Ready before the credentials: %v, want %s: Missing user credentials", err, api.DomainReady)
	}
	fe.Close() // the front-end dies here
	return path, backendPID(t, st, path)
}

// sessionAuth runs `ovpn3 session-auth --auth-req PID` (a separate client
// process) with the answers to the prompts on its standard input.
func sessionAuth(ctx context.Context, st *testbed.Stack, pid uint32, answers ...string) (string, error) {
	cmd := exec.CommandContext(ctx, st.Bin.CLI, "session-auth", "--auth-req", fmt.Sprint(pid), "--timeout", "60s")
	cmd.Env = st.Env()
	cmd.Stdin = strings.NewReader(strings.Join(answers, "\n") + "\n")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func sessionStatus(t *testing.T, st *testbed.Stack, path dbus.ObjectPath) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := st.SessionProperty(ctx, path, "status")
	if err != nil {
		t.Fatal(err)
	}
	f, ok := v.Value().([]any)
	if !ok || len(f) != 3 {
		t.Fatalf("status %v", v)
	}
	major, _ := f[0].(uint32)
	minor, _ := f[1].(uint32)
	msg, _ := f[2].(string)
	return api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}
}

// TestUserInputQueue: variants f (auth-user-pass) and g (certificate,
// auth-user-pass and a static challenge, SCRV1) against the real OpenVPN
// 2.6 server. The session is started by a front-end that disconnects
// while the session waits for credentials; `ovpn3 session-auth` in another
// process finds it, fills the user-input queue from its standard input and
// connects. A wrong password ends in CONN_AUTH_FAILED with the session
// kept, and the right one then connects.
func TestUserInputQueue(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	for _, tc := range []struct {
		v     testbed.Variant
		good  []string
		bad   []string
		slots int
	}{
		{testbed.VariantF, []string{testbed.TestUser, testbed.TestPass}, []string{testbed.TestUser, "wrong-password"}, 2},
		{testbed.VariantG, []string{testbed.TestUser, testbed.TestPass, testbed.TestOTP},
			[]string{testbed.TestUser, testbed.TestPass, "000000"}, 3},
	} {
		t.Run(string(tc.v), func(t *testing.T) {
			t.Parallel()
			st := testbed.NewStack(t, bin, tc.v)
			w := watch(t, st)
			name := "e2e-auth-" + string(tc.v)
			importProfile(t, st, tc.v, name)
			path, pid := startWaitingSession(t, st, name)
			if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorCfgRequireUser {
				t.Errorf("status while waiting: %s", s)
			}
			// AttentionRequired is broadcast from the session path.
			waitSignal(t, w, 10*time.Second, "AttentionRequired", func(s *dbus.Signal) bool {
				return s.Path == path && s.Name == api.InterfaceSessions+".AttentionRequired" && len(s.Body) == 3 &&
					s.Body[0] == uint32(api.AttentionTypeCredentials) && s.Body[1] == uint32(api.AttentionGroupUserPassword)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			out, err := st.CLI(ctx, "session-auth")
			if err != nil || !strings.Contains(out, fmt.Sprintf("Auth Request ID: %d", pid)) {
				t.Errorf("session-auth list: %v\n%s", err, out)
			}

			out, err = sessionAuth(ctx, st, pid, tc.bad...)
			if err == nil || !strings.Contains(out, "user authentication failed") {
				t.Fatalf("session-auth with a wrong answer: err %v\n%s", err, out)
			}
			t.Logf("session-auth with a wrong answer:\n%s", out)
			if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorConnAuthFailed || strings.TrimSpace(s.Message) == "" {
				t.Errorf("status after the wrong answer: %s, want CONN_AUTH_FAILED with a reason", s)
			}
			if n := strings.Count(out, ": "); n < tc.slots {
				t.Errorf("session-auth asked %d questions, want %d:\n%s", n, tc.slots, out)
			}

			out, err = sessionAuth(ctx, st, pid, tc.good...)
			if err != nil || !strings.Contains(out, "Connected to") {
				t.Fatalf("session-auth with the right answers: %v\n%s", err, out)
			}
			t.Logf("session-auth with the right answers:\n%s", out)
			if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorConnConnected {
				t.Errorf("status after session-auth: %s", s)
			}
			if n := readNetState(t, st.Pair); len(n.extraLinks) == 0 {
				t.Error("connected, but no TUN device in the client namespace")
			}
			disconnectAndWait(ctx, t, st, w, path, "--path", string(path))
		})
	}
}

// TestPauseResume: Pause stops the tunnel (the engine stops and the TUN
// device goes away; the session stays, CONN_PAUSED), Resume reconnects it
// and traffic flows again.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-pause")
	path := connect(t, st, w, "e2e-pause")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	transfer(t, st.Pair, 1<<20)
	if out, err := st.CLI(ctx, "session-manage", "--path", string(path), "--pause"); err != nil {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorConnPaused {
		t.Errorf("status after pause: %s", s)
	}
	waitClean(t, st.Pair, 10*time.Second) // no TUN device, no routes: no traffic
	if out, err := st.CLI(ctx, "session-manage", "--path", string(path), "--pause"); err == nil ||
		!strings.Contains(out, "Connection is already paused") {
		t.Errorf("second pause: %v\n%s", err, out)
	}
	if out, err := st.CLI(ctx, "session-manage", "--path", string(path), "--resume"); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	waitConnected(t, st, path, "resume")
	transfer(t, st.Pair, 1<<20)
	if out, err := st.CLI(ctx, "session-manage", "--path", string(path), "--restart"); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	waitConnected(t, st, path, "restart")
	transfer(t, st.Pair, 1<<20)
	disconnectAndWait(ctx, t, st, w, path, "--path", string(path))
}

// TestKillBackendPromptly: SIGKILL of a connected session's backend is
// noticed at once (process exit and the bus dropping its connection are
// events, no polling): SESS_DESTROYED follows within one second and no
// device is left behind.
func TestKillBackendPromptly(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-kill1s")
	path := connect(t, st, w, "e2e-kill1s")
	pid := backendPID(t, st, path)
	t0 := time.Now()
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	if d := time.Since(t0); d > time.Second {
		t.Errorf("SESS_DESTROYED %v after SIGKILL, want within 1s", d)
	} else {
		t.Logf("SESS_DESTROYED %v after SIGKILL", d)
	}
	waitClean(t, st.Pair, 15*time.Second)
}

// TestAutomaticRestart: with the automatic-restart=on-failure override a
// SIGKILLed backend is started again under the same session path and the
// tunnel comes back (no SESS_DESTROYED).
func TestAutomaticRestart(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-restart")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	setOverride(t, st, "e2e-restart", "automatic-restart", "on-failure")
	path := connect(t, st, w, "e2e-restart")
	pid := backendPID(t, st, path)
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, err := st.SessionProperty(ctx, path, "backend_pid"); err == nil && v.Value() != pid &&
			sessionStatus(t, st, path).Minor == api.StatusMinorConnConnected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s not reconnected after its backend was killed", path)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, s := range w.Signals() {
		if isSessionEvent(path, api.SessionEventDestroyed)(s) {
			t.Error("SESS_DESTROYED for a session that restarts")
		}
	}
	transfer(t, st.Pair, 1<<20)
	disconnectAndWait(ctx, t, st, w, path, "--path", string(path))
}
