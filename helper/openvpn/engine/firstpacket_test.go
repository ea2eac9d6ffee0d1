package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// countingDialConn is the client's socket, counting what it sends.
type countingDialConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingDialConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// firstPacketEvents notes, when the engine reports a state, how many
// packets the client had sent.
type firstPacketEvents struct {
	writes *atomic.Int64
	cancel context.CancelFunc
	mu     sync.Mutex
	sent   map[State]int64
}

func (e *firstPacketEvents) State(s State, _ string) {
	e.mu.Lock()
	if _, ok := e.sent[s]; !ok {
		e.sent[s] = e.writes.Load()
	}
	e.mu.Unlock()
	if s == StateWaitingForServer {
		e.cancel()
	}
}

// The client's reset is on the wire before the engine reports
// StateWaitingForServer (which the backend turns into signals through the
// bus), and nothing is sent before StateConnecting.
func TestResetBeforeWaitingState(t *testing.T) {
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	prof := testProfile(t, fmt.Sprintf("remote 127.0.0.1 %d udp\nserver-poll-timeout 30\n", srv.LocalAddr().(*net.UDPAddr).Port))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a hang guard
	defer cancel()
	var writes atomic.Int64
	ev := &firstPacketEvents{writes: &writes, cancel: cancel, sent: map[State]int64{}}
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return countingDialConn{Conn: c, writes: &writes}, nil
	}
	c, err := New(Config{Profile: prof, Tun: &nsTun{}, Events: ev, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if n, ok := ev.sent[StateConnecting]; !ok || n != 0 {
		t.Errorf("at StateConnecting: reported %v, packets sent %d, want none", ok, n)
	}
	if n, ok := ev.sent[StateWaitingForServer]; !ok || n != 1 {
		t.Errorf("at StateWaitingForServer: reported %v, packets sent %d, want the reset", ok, n)
	}
}

// orderLog records the engine's state reports and log messages in the
// order they happen.
type orderLog struct {
	mu  sync.Mutex
	seq []string
	ch  chan State
}

func (o *orderLog) add(s string) {
	o.mu.Lock()
	o.seq = append(o.seq, s)
	o.mu.Unlock()
}

func (o *orderLog) State(s State, _ string) {
	o.add("state " + s.String())
	select {
	case o.ch <- s:
	default:
	}
}

func (o *orderLog) Enabled(context.Context, slog.Level) bool { return true }
func (o *orderLog) Handle(_ context.Context, r slog.Record) error {
	o.add("log " + r.Message)
	return nil
}
func (o *orderLog) WithAttrs([]slog.Attr) slog.Handler { return o }
func (o *orderLog) WithGroup(string) slog.Handler      { return o }

// At the PUSH_REPLY the connected state is reported before the
// "connected" log line: in the backend the CONN_CONNECTED signal goes out
// first, not behind the log line's signal.
func TestConnectedStateBeforeItsLogLine(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	prof, err := profile.Parse(srv.Profile())
	if err != nil {
		t.Fatal(err)
	}
	o := &orderLog{ch: make(chan State, 16)}
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: o, Logger: slog.New(o), Dial: nsDial(pair.ClientNS)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	deadline := time.After(60 * time.Second) // a hang guard
	for connected := false; !connected; {
		select {
		case s := <-o.ch:
			connected = s == StateConnected
		case err := <-runErr:
			t.Fatalf("Run ended before connecting: %v", err)
		case <-deadline:
			t.Fatal("not connected")
		}
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	state, line := slices.Index(o.seq, "state connected"), slices.Index(o.seq, "log connected")
	if state < 0 || line < 0 || state > line {
		t.Errorf("state connected at %d, its log line at %d, want the state first: %q", state, line, o.seq)
	}
}
