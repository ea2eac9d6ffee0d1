package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// TestStaticChallengeAskedAgain: with a static-challenge profile and no
// auth-token, a server restart makes the session ask for the OTP again
// (CFG_REQUIRE_USER, AttentionRequired) instead of re-sending the used
// one; the answer and Connect bring it back (issue 12).
func TestStaticChallengeAskedAgain(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantG, func(o *testbed.StackOptions) {
		o.Server.Extra = []string{"keepalive 1 5"}
	})
	w := watch(t, st)
	name := "e2e-static-challenge-again"
	importProfile(t, st, testbed.VariantG, name)
	path, sess := newSession(t, st, name)
	provideAll(t, sess, map[string]string{"username": testbed.TestUser, "password": testbed.TestPass, "static_challenge": testbed.TestOTP})
	if err := sessCall(sess, "Ready").Err; err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := sessCall(sess, "Connect").Err; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	waitSignal(t, w, 60*time.Second, "CONN_CONNECTED", func(s *dbus.Signal) bool {
		return s.Path == path && isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected)(s)
	})
	seen := len(w.Signals())

	// The server restarts: it forgets the session, there is no token.
	if err := st.Server.Stop(5 * time.Second); err != nil {
		t.Logf("server stop: %v", err)
	}
	testbed.ServerWith(t, st.Pair, testbed.VariantG, testbed.ServerOptions{PKI: st.PKI, Extra: []string{"keepalive 1 5"}})

	waitSignal(t, w, 60*time.Second, "AttentionRequired USER_PASSWORD after the restart",
		after(seen, isAttention(path, api.AttentionGroupUserPassword, "Username/password credentials needed")))
	waitSignal(t, w, 10*time.Second, "StatusChange CFG_REQUIRE_USER after the restart",
		after(seen, isStatusMsg(path, api.StatusMajorConnection, api.StatusMinorCfgRequireUser, "Username/password credentials needed")))
	if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorCfgRequireUser {
		t.Errorf("session status while asking: %s", s)
	}
	// Only the OTP is asked for; username and password are kept.
	var groups [][]any
	if err := sessCall(sess, "UserInputQueueGetTypeGroup").Store(&groups); err != nil || len(groups) != 1 ||
		groups[0][1] != uint32(api.AttentionGroupChallengeStatic) {
		t.Fatalf("type groups %v, %v: want only the static challenge", groups, err)
	}
	if err := sessCall(sess, "Ready").Err; !api.IsDomain(err, api.DomainReady) {
		t.Errorf("Ready with the OTP unanswered: %v", err)
	}
	seen = len(w.Signals())
	provideAll(t, sess, map[string]string{"static_challenge": testbed.TestOTP})
	if err := sessCall(sess, "Ready").Err; err != nil {
		t.Fatalf("Ready with the new OTP: %v", err)
	}
	if err := sessCall(sess, "Connect").Err; err != nil {
		t.Fatalf("Connect with the new OTP: %v", err)
	}
	waitSignal(t, w, 60*time.Second, "CONN_CONNECTED with the new OTP", after(seen, func(s *dbus.Signal) bool {
		return s.Path == path && isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected)(s)
	}))
	if err := testbed.Ping(t.Context(), st.Pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping after the new OTP: %v", err)
	}
}

// TestSessionLimitsStatus: inactive and session-timeout end the session
// with CONN_DONE and the reason (openvpn3's "Inactive tunnel,
// disconnected"), and the session is closed.
func TestSessionLimitsStatus(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	for _, tc := range []struct{ line, reason string }{
		{"inactive 5", "Inactive tunnel, disconnected"},
		{"session-timeout 10", "Session timeout"},
	} {
		t.Run(strings.Fields(tc.line)[0], func(t *testing.T) {
			st := testbed.NewStack(t, bin, testbed.VariantA)
			w := watch(t, st)
			name := "e2e-" + strings.Fields(tc.line)[0]
			importProfile(t, st, testbed.VariantA, name, tc.line)
			path := connect(t, st, w, name)
			done := waitSignal(t, w, 60*time.Second, "CONN_DONE", func(s *dbus.Signal) bool {
				return s.Path == path && isStatus(api.StatusMajorConnection, api.StatusMinorConnDone)(s)
			})
			if msg, _ := done.Body[2].(string); !strings.Contains(msg, tc.reason) {
				t.Errorf("%s: CONN_DONE %q, want the reason %q", tc.line, msg, tc.reason)
			}
			waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
		})
	}
}
