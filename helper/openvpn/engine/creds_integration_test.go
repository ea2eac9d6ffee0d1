package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// One-time credentials are never sent twice: with a static challenge
// (variant g) or auth-nocache (variant f) and no auth-token, a server
// restart ends Run in StateCredentialsNeeded instead of re-sending them;
// with an auth-token the session renegotiates on the token alone.
func TestIntegrationOneTimeCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, tc := range []struct {
		name    string
		v       testbed.Variant
		extra   string
		creds   Credentials
		why     string
		restart bool
		token   bool
	}{
		{"static-challenge", testbed.VariantG, "", Credentials{Username: testbed.TestUser, Password: testbed.TestPass, ChallengeResponse: testbed.TestOTP}, "static-challenge answer", true, false},
		{"auth-nocache", testbed.VariantF, "auth-nocache\n", Credentials{Username: testbed.TestUser, Password: testbed.TestPass}, "auth-nocache", true, false},
		{"static-challenge-with-token", testbed.VariantG, "reneg-sec 4\n", Credentials{Username: testbed.TestUser, Password: testbed.TestPass, ChallengeResponse: testbed.TestOTP}, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pair := testbed.NetPair(t)
			opts := testbed.ServerOptions{Extra: []string{"keepalive 1 5"}, AuthGenToken: tc.token}
			srv := testbed.ServerWith(t, pair, tc.v, opts)
			prof := mustProfile(t, srv.Profile()+tc.extra)
			states := newStateLog()
			c, err := New(Config{Profile: prof, Credentials: tc.creds, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states,
				Logger: testLogger(t), Dial: nsDial(pair.ClientNS)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx) }()
			states.waitFor(t, StateConnected, 60*time.Second)
			if !tc.restart {
				// Renegotiations send the pushed token, not the OTP.
				strictPing(ctx, t, pair.ClientNS, testbed.TunnelServer4, 60, "0.2", 56)
				if rot := c.Stats().KeyRotations; rot < 2 {
					t.Errorf("%d key rotations with reneg-sec 4 in 12 s", rot)
				}
				for _, s := range states.all() {
					if s == StateCredentialsNeeded || s == StateReconnecting {
						t.Fatalf("renegotiation with an auth-token: %v %q", states.all(), states.last())
					}
				}
				cancel()
				if err := <-runErr; err != nil {
					t.Errorf("Run: %v", err)
				}
				return
			}
			if err := srv.Stop(5 * time.Second); err != nil {
				t.Logf("server stop: %v", err)
			}
			if !strings.Contains(srv.Log(), "authentication succeeded") {
				t.Fatalf("the first server did not log the login:\n%s", srv.LogTail(30))
			}
			opts.PKI = srv.PKI
			srv = testbed.ServerWith(t, pair, tc.v, opts)
			var err2 error
			select {
			case err2 = <-runErr:
			case <-ctx.Done():
				t.Fatalf("Run still going after the server restart: %v", states.all())
			}
			var fe *fatalError
			if !errors.As(err2, &fe) || fe.state != StateCredentialsNeeded || !strings.Contains(err2.Error(), tc.why) {
				t.Fatalf("after the restart Run returned %v (states %v), want credentials needed (%s)", err2, states.all(), tc.why)
			}
			if all := states.all(); all[len(all)-1] != StateCredentialsNeeded {
				t.Errorf("last state %v", all)
			}
			// The restarted server never saw the credentials again.
			if l := srv.Log(); strings.Contains(l, "authentication succeeded") || strings.Contains(l, "AUTH_FAILED") {
				t.Errorf("the credentials reached the restarted server:\n%s", srv.LogTail(30))
			}
		})
	}
}
