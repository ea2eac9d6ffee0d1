package engine

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// logCapture is a logger that writes to the test log and keeps the text
// for assertions.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (l *logCapture) Write(b []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(b)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func captureLog(t *testing.T) (*slog.Logger, *logCapture) {
	lc := &logCapture{t: t}
	return slog.New(slog.NewTextHandler(lc, &slog.HandlerOptions{Level: slog.LevelDebug})), lc
}

// strictPing pings addr count times from ns (size bytes of payload,
// interval seconds apart) and fails unless every request was answered.
func strictPing(ctx context.Context, t *testing.T, ns, addr string, count int, interval string, size int) {
	t.Helper()
	iv, err := time.ParseDuration(interval + "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.PingWith(ctx, ns, addr, count, testbed.PingOptions{Size: size, Interval: iv}); err != nil {
		t.Error(err)
	}
}

// A server whose certificate is expired (or not yet valid) is refused,
// the engine keeps trying with the reason in its state, and once the
// server has a good certificate it connects without anyone doing
// anything (issue 12).
func TestIntegrationCertFixedWhileRetrying(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, tc := range []struct {
		name                string
		notBefore, notAfter time.Time
		reason              string
	}{
		{"expired", time.Now().AddDate(-2, 0, 0), time.Now().AddDate(-1, 0, 0), "expired"},
		{"not-yet-valid", time.Now().AddDate(0, 0, 1), time.Now().AddDate(1, 0, 0), "not yet valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pki := newCertPKI(t, nil, 0)
			good := pki.server
			pki.server = issueCert(t, certSpec{subject: pkix.Name{CommonName: "server"}, ku: leafKU,
				eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, notBefore: tc.notBefore, notAfter: tc.notAfter}, pki.ca)
			pki.write(t)
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
			prof := mustProfile(t, srv.Profile())
			states := newStateLog()
			c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: nsDial(pair.ClientNS)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx) }()
			// Two refused attempts: the engine keeps trying.
			for range 2 {
				states.waitFor(t, StateReconnecting, 60*time.Second)
				if d := states.last(); !strings.Contains(d, tc.reason) {
					t.Fatalf("reconnecting with reason %q, want it to say %q", d, tc.reason)
				}
			}
			// The admin fixes the server; the client is left alone.
			if err := srv.Stop(5 * time.Second); err != nil {
				t.Logf("server stop: %v", err)
			}
			pki.server = good
			pki.write(t)
			testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: pki.files})
			states.waitFor(t, StateConnected, 90*time.Second)
			if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
				t.Errorf("ping after the fix: %v", err)
			}
			cancel()
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// A server pushing options this client does not know, and values it
// cannot parse where skipping them is safe, is connected to; each is
// named in a warning in the log.
func TestIntegrationPushedUnknownOptions(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA,
		`push "frobnicate-tunnel 7"`,       // an option from the future
		`push "dns server 1 frobnicate x"`, // a dns keyword from the future
		`push "session-timeout soon"`,      // a value that does not parse
		`push "explicit-exit-notify lots"`)
	logger, logs := captureLog(t)
	_, _, ctx, stop := runClient(t, pair, srv.Profile(), func(c *Config) { c.Logger = logger })
	strictPing(ctx, t, pair.ClientNS, testbed.TunnelServer4, 5, "0.2", 56)
	stop()
	text := logs.String()
	for _, want := range []string{"frobnicate-tunnel", `unknown keyword \"frobnicate\"`, "session-timeout soon", "explicit-exit-notify lots"} {
		found := false
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning in the log naming %s", want)
		}
	}
}

// Client-side reneg-sec 5 renegotiates every 5 s while a strict ping
// through the tunnel loses nothing.
func TestIntegrationClientRenegSec(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "ping")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	c, states, ctx, stop := runClient(t, pair, srv.Profile()+"reneg-sec 5\n", nil)
	start := time.Now()
	strictPing(ctx, t, pair.ClientNS, testbed.TunnelServer4, 100, "0.2", 56) // 20 s
	took := time.Since(start)
	rot := c.Stats().KeyRotations
	t.Logf("%d key rotations in %s", rot, took.Round(time.Second))
	// Every 5 s of key age: at least one rotation per 5 s less one for
	// the handshakes, never more often than every 5 s.
	if maxRot := int64(took/(5*time.Second)) + 1; rot < 3 || rot > maxRot {
		t.Errorf("%d key rotations in %s with reneg-sec 5, want 3..%d", rot, took.Round(time.Second), maxRot)
	}
	for _, s := range states.all() {
		if s == StateReconnecting {
			t.Errorf("reconnected instead of renegotiating: %v", states.all())
		}
	}
	stop()
}

// reneg-bytes 1000000 renegotiates after about a megabyte on a key while
// a strict ping loses nothing.
func TestIntegrationClientRenegBytes(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "ping")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	c, _, ctx, stop := runClient(t, pair, srv.Profile()+"reneg-bytes 1000000\n", nil)
	before := c.Stats()
	// 700 pings of 1400 bytes each way: about 2 MB on the wire.
	strictPing(ctx, t, pair.ClientNS, testbed.TunnelServer4, 700, "0.01", 1400)
	after := c.Stats()
	moved := (after.BytesIn - before.BytesIn) + (after.BytesOut - before.BytesOut)
	rot := after.KeyRotations - before.KeyRotations
	t.Logf("%d bytes moved, %d key rotations", moved, rot)
	if want := moved / 1000000; rot < want-1 || rot < 1 || rot > want {
		t.Errorf("%d key rotations for %d bytes with reneg-bytes 1000000, want %d (one per MB, the last key may be fresh)", rot, moved, want)
	}
	stop()
}

// inactive 5 ends a session 5 s after its traffic stopped (not while it
// flows); session-timeout 10 ends a busy one after 10 s. Both end in
// StateDone with the reason (the backend's CONN_DONE).
func TestIntegrationSessionLimits(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, tc := range []struct {
		line, reason string
		busy         bool
		after        time.Duration
	}{
		{"inactive 5", "Inactive tunnel", false, 5 * time.Second},
		{"session-timeout 10", "Session timeout", true, 10 * time.Second},
	} {
		t.Run(strings.Fields(tc.line)[0], func(t *testing.T) {
			t.Parallel()
			pair := testbed.NetPair(t)
			srv := testbed.Server(t, pair, testbed.VariantA, "keepalive 1 10")
			prof := mustProfile(t, srv.Profile()+tc.line+"\n")
			states := newStateLog()
			c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: nsDial(pair.ClientNS)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx) }()
			states.waitFor(t, StateConnected, 60*time.Second)
			connected := time.Now()
			if !tc.busy {
				// 8 s of traffic keep an "inactive 5" session up; the
				// countdown starts when the traffic stops.
				strictPing(ctx, t, pair.ClientNS, testbed.TunnelServer4, 40, "0.2", 56)
				if s := states.all(); s[len(s)-1] != StateConnected {
					t.Fatalf("%s: session ended while traffic flowed: %v %q", tc.line, s, states.last())
				}
				connected = time.Now()
			}
			if tc.busy {
				go func() {
					// Traffic all along does not keep the session alive.
					_, _ = testbed.Run(ctx, pair.ClientNS, "ping", "-q", "-n", "-i", "0.2", "-w", "30", testbed.TunnelServer4)
				}()
			}
			var err2 error
			select {
			case err2 = <-runErr:
			case <-ctx.Done():
				t.Fatalf("%s: session still up after %s", tc.line, time.Since(connected).Round(time.Second))
			}
			lived := time.Since(connected) // since connecting, or since the traffic stopped
			all := states.all()
			if all[len(all)-1] != StateDone || !strings.Contains(states.last(), tc.reason) {
				t.Fatalf("%s: last state %v %q, want done with %q", tc.line, all[len(all)-1], states.last(), tc.reason)
			}
			var fe *fatalError
			if !errors.As(err2, &fe) || fe.state != StateDone {
				t.Errorf("Run returned %v", err2)
			}
			if lived < tc.after {
				t.Errorf("%s: ended after %s", tc.line, lived.Round(time.Millisecond))
			}
			t.Logf("%s: ended %s after connecting: %s", tc.line, lived.Round(time.Millisecond), states.last())
		})
	}
}

func mustProfile(t *testing.T, text string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse(text)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	return p
}
