package engine

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// fakeStagger is the stagger clock of raceEndpoints under test control:
// each wait is recorded and ends only when the test fires it.
type fakeStagger struct {
	mu    sync.Mutex
	waits []time.Duration
	chans []chan time.Time
}

func (f *fakeStagger) wait(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.waits = append(f.waits, d)
	f.chans = append(f.chans, ch)
	return ch
}

func (f *fakeStagger) fire(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.chans[i] <- time.Time{}
}

// fakeTransport is a transport that only records Close.
type fakeTransport struct{ closed chan struct{} }

func newFakeTransport() *fakeTransport                  { return &fakeTransport{closed: make(chan struct{})} }
func (f *fakeTransport) ReadPacket([]byte) (int, error) { <-f.closed; return 0, net.ErrClosed }
func (f *fakeTransport) WritePacket([]byte) error       { return nil }
func (f *fakeTransport) Close() error                   { close(f.closed); return nil }
func (f *fakeTransport) Proto() string                  { return "tcp" }
func (f *fakeTransport) RemoteAddr() net.Addr           { return nil }

func eps(addrs ...string) []endpoint {
	var out []endpoint
	for _, a := range addrs {
		out = append(out, endpoint{network: "tcp", addr: a})
	}
	return out
}

// TestRaceEndpointsStaggered: a silent first address does not hold up the
// second, which starts after the 250 ms stagger (not the first's whole
// timeout) and wins; the first is cancelled and what it opened is closed.
func TestRaceEndpointsStaggered(t *testing.T) {
	var st fakeStagger
	started := make(chan string, 4)
	loser := newFakeTransport()
	probe := func(ctx context.Context, ep endpoint) (transport.Conn, error) {
		started <- ep.addr
		if ep.addr == "[2001:db8::1]:1194" { // silent until cancelled
			<-ctx.Done()
			return loser, nil // opened late: must be closed by the race
		}
		return newFakeTransport(), nil
	}
	type res struct {
		i   int
		tr  transport.Conn
		err error
	}
	done := make(chan res, 1)
	go func() {
		i, tr, err := raceEndpoints(context.Background(), eps("[2001:db8::1]:1194", "192.0.2.1:1194"), connectionAttemptDelay, st.wait, probe)
		done <- res{i, tr, err}
	}()
	if got := <-started; got != "[2001:db8::1]:1194" {
		t.Fatalf("first probe %s", got)
	}
	select {
	case got := <-started:
		t.Fatalf("%s started before the stagger delay passed", got)
	case r := <-done:
		t.Fatalf("race ended before the second address was tried: %+v", r)
	case <-time.After(50 * time.Millisecond): // the fake delay has not fired: nothing may move
	}
	st.fire(0)
	if got := <-started; got != "192.0.2.1:1194" {
		t.Fatalf("second probe %s", got)
	}
	r := <-done
	if r.err != nil || r.i != 1 || r.tr == nil {
		t.Fatalf("race = %d, %v, %v; want the second address", r.i, r.tr, r.err)
	}
	if !slices.Equal(st.waits, []time.Duration{250 * time.Millisecond}) {
		t.Errorf("stagger waits %v, want one of 250ms", st.waits)
	}
	select {
	case <-loser.closed:
	default:
		t.Error("the losing probe's transport was left open")
	}
}

// TestRaceEndpointsFailFast: an address that fails at once hands over to
// the next without waiting for the stagger; when all fail, every error is
// reported.
func TestRaceEndpointsFailFast(t *testing.T) {
	var st fakeStagger
	var mu sync.Mutex
	var order []string
	probe := func(ctx context.Context, ep endpoint) (transport.Conn, error) {
		mu.Lock()
		order = append(order, ep.addr)
		mu.Unlock()
		if ep.addr == "192.0.2.3:1194" {
			return newFakeTransport(), nil
		}
		return nil, errors.New("refused " + ep.addr)
	}
	i, tr, err := raceEndpoints(context.Background(), eps("192.0.2.1:1194", "192.0.2.2:1194", "192.0.2.3:1194"), connectionAttemptDelay, st.wait, probe)
	if err != nil || i != 2 || tr == nil {
		t.Fatalf("race = %d, %v, %v", i, tr, err)
	}
	if !slices.Equal(order, []string{"192.0.2.1:1194", "192.0.2.2:1194", "192.0.2.3:1194"}) {
		t.Errorf("order %v", order)
	}
	probeFail := func(ctx context.Context, ep endpoint) (transport.Conn, error) {
		return nil, errors.New("refused " + ep.addr)
	}
	_, _, err = raceEndpoints(context.Background(), eps("192.0.2.1:1194", "192.0.2.2:1194"), connectionAttemptDelay, st.wait, probeFail)
	if err == nil || err.Error() != "refused 192.0.2.1:1194\nrefused 192.0.2.2:1194" {
		t.Errorf("all failed: %v", err)
	}
}

func TestInterleaveFamilies(t *testing.T) {
	in := eps("[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1", "192.0.2.1:1", "192.0.2.2:1")
	var got []string
	for _, ep := range interleaveFamilies(in) {
		got = append(got, ep.addr)
	}
	want := []string{"[2001:db8::1]:1", "192.0.2.1:1", "[2001:db8::2]:1", "192.0.2.2:1", "[2001:db8::3]:1"}
	if !slices.Equal(got, want) {
		t.Errorf("interleaved %v, want %v", got, want)
	}
}

// TestRaceSkippedWithLport: with a fixed local port the addresses are
// tried one after the other (two sockets cannot bind the same port), so
// no race runs.
func TestRaceSkippedWithLport(t *testing.T) {
	c := &Client{raceWait: func(time.Duration) <-chan time.Time { t.Error("a race ran"); return nil }}
	in := []endpoint{{network: "udp", addr: "192.0.2.1:1194", lport: 5000}, {network: "udp", addr: "192.0.2.2:1194", lport: 5000}}
	out, tr, err := c.raceAddresses(context.Background(), in)
	if err != nil || tr != nil || !slices.Equal(out, in) {
		t.Errorf("raceAddresses = %v, %v, %v; want the list unchanged", out, tr, err)
	}
}
