package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// heldClient starts Run of a held client for prof; Run's result arrives
// on the channel, and the client stops in cleanup.
func heldClient(t *testing.T, cfg Config) (*Client, *stateLog, chan error, context.CancelFunc) {
	t.Helper()
	states := newStateLog()
	cfg.Events, cfg.Hold, cfg.Tun = states, true, orTun(cfg.Tun)
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runErr, cancel := runInBackground(t, c)
	return c, states, runErr, cancel
}

func orTun(p TunProvider) TunProvider {
	if p == nil {
		return &nsTun{}
	}
	return p
}

// sinkServer is a UDP socket that reads what the client sends and never
// answers; the channel gets each datagram's length.
func sinkServer(t *testing.T) (port int, got chan int) {
	t.Helper()
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	got = make(chan int, 64)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case got <- n:
			default:
			}
		}
	}()
	return srv.LocalAddr().(*net.UDPAddr).Port, got
}

// A held connection that is not released within a third of the
// hand-window ends Run with ErrHoldEnded, having reported nothing; it
// cannot be released afterwards.
func TestHoldExpires(t *testing.T) {
	port, got := sinkServer(t)
	prof := testProfile(t, fmt.Sprintf("remote 127.0.0.1 %d udp\nserver-poll-timeout 30\nhand-window 3\n", port))
	c, states, runErr, _ := heldClient(t, Config{Profile: prof})
	<-got // the reset
	err := <-runErr
	if !errors.Is(err, ErrHoldEnded) || !errors.Is(err, errHoldExpired) {
		t.Fatalf("Run = %v, want ErrHoldEnded (held too long)", err)
	}
	if s := states.all(); len(s) != 0 {
		t.Errorf("a held connection reported %v", s)
	}
	if err := c.Release(Release{}); !errors.Is(err, ErrHoldEnded) {
		t.Errorf("Release after the hold ended = %v, want ErrHoldEnded", err)
	}
}

// A held connection whose server refuses it (nothing listens on the
// port: the socket reports the ICMP error) ends at once, quietly, instead
// of going through the reconnect policy.
func TestHoldFailsQuietly(t *testing.T) {
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	prof := testProfile(t, fmt.Sprintf("remote 127.0.0.1 %d udp\nserver-poll-timeout 30\nconnect-retry-max 5\n", port))
	_, states, runErr, _ := heldClient(t, Config{Profile: prof})
	if err := <-runErr; !errors.Is(err, ErrHoldEnded) {
		t.Fatalf("Run = %v, want ErrHoldEnded", err)
	}
	if s := states.all(); len(s) != 0 {
		t.Errorf("a held connection reported %v", s)
	}
}

// Release reports what was held, in order: connecting, then waiting for
// the server once the reset is out; afterwards the client reports as
// always (disconnected when cancelled).
func TestReleaseReportsHeldStates(t *testing.T) {
	port, got := sinkServer(t)
	prof := testProfile(t, fmt.Sprintf("remote 127.0.0.1 %d udp\nserver-poll-timeout 30\n", port))
	c, states, runErr, cancel := heldClient(t, Config{Profile: prof})
	<-got // the reset is out
	if err := c.Release(Release{Credentials: Credentials{KeyPassphrase: "x"}}); err == nil {
		t.Error("Release with a key passphrase accepted")
	}
	// Run reports the waiting state right after the reset's write.
	deadline := time.Now().Add(30 * time.Second) // a hang guard
	for {
		c.mu.Lock()
		waiting := c.hold.hasLast && c.hold.last == StateWaitingForServer
		c.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held client never reached waiting-for-server")
		}
		time.Sleep(time.Millisecond)
	}
	if s := states.all(); len(s) != 0 {
		t.Fatalf("reported %v before Release", s)
	}
	if err := c.Release(Release{}); err != nil {
		t.Fatal(err)
	}
	if s := states.all(); !slices.Equal(s, []State{StateConnecting, StateWaitingForServer}) {
		t.Errorf("after Release: %v, want connecting, waiting-for-server", s)
	}
	if err := c.Release(Release{}); err == nil {
		t.Error("a second Release accepted")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
	if s := states.all(); s[len(s)-1] != StateDisconnected {
		t.Errorf("states %v, want disconnected last", s)
	}
}

// logHook passes each record to a function and on to a handler.
type logHook struct {
	slog.Handler
	on func(slog.Record)
}

func (h logHook) Handle(ctx context.Context, r slog.Record) error {
	h.on(r)
	return h.Handler.Handle(ctx, r)
}
func (h logHook) WithAttrs(as []slog.Attr) slog.Handler {
	return logHook{h.Handler.WithAttrs(as), h.on}
}
func (h logHook) WithGroup(n string) slog.Handler { return logHook{h.Handler.WithGroup(n), h.on} }

// Against the real 2.6 server with a username/password check: the held
// client completes the TLS handshake (both sides say so) and the server
// gets no key-method 2 (its auth script is not run, nothing reported);
// Release with the credentials sends it and the client connects.
func TestIntegrationHeldHandshake(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	script, countFile := countingAuthScript(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantF, testbed.ServerOptions{
		Extra: []string{fmt.Sprintf(`auth-user-pass-verify %s via-file`, script)}})
	text := srv.Profile()
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	tlsDone := make(chan struct{}, 1)
	log := slog.New(logHook{testLogger(t).Handler(), func(r slog.Record) {
		if r.Message == "TLS handshake done" {
			select {
			case tlsDone <- struct{}{}:
			default:
			}
		}
	}})
	c, states, runErr, _ := heldClient(t, Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Logger: log,
		Version: "ovpn3go-test", Dial: nsDial(pair.ClientNS)})
	select {
	case <-tlsDone:
	case err := <-runErr:
		t.Fatalf("Run ended while held: %v", err)
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("the held client's TLS handshake did not end")
	}
	// The client's Finished left before its log line; without the hold
	// key-method 2 rode with it and the server ran its auth script within
	// milliseconds. Watch for that for a while (an absence cannot be
	// awaited; under heavy load this check can only miss, never fail).
	for end := time.Now().Add(time.Second); time.Now().Before(end) && authCalls(t, countFile) == 0; {
		time.Sleep(10 * time.Millisecond)
	}
	if n := authCalls(t, countFile); n != 0 || strings.Contains(srv.Log(), "peer info:") {
		t.Fatalf("the server got key-method 2 from the held client (%d auth calls); its log:\n%s", n, srv.LogTail(30))
	}
	if s := states.all(); len(s) != 0 {
		t.Fatalf("the held client reported %v", s)
	}
	if err := c.Release(Release{Credentials: Credentials{Username: testbed.TestUser, Password: testbed.TestPass}}); err != nil {
		t.Fatal(err)
	}
	states.waitFor(t, StateConnected, 30*time.Second)
	if n := authCalls(t, countFile); n != 1 {
		t.Errorf("auth script called %d times, want 1", n)
	}
	if n := strings.Count(srv.Log(), "Control Channel: TLS"); n != 1 {
		t.Errorf("the server saw %d TLS sessions, want the held one only", n)
	}
	_ = text
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	if err := testbed.Ping(pctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping through the tunnel: %v", err)
	}
	if s := states.all(); len(s) < 3 || s[0] != StateConnecting || s[1] != StateWaitingForServer {
		t.Errorf("states %v, want connecting, waiting-for-server first", s)
	}
	_ = os.Remove(countFile)
}
