package backend

import (
	"context"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// A session that ends by its own limits (inactive, session-timeout) is
// CONN_DONE with the reason, as openvpn3 reports its inactivity timeout,
// and the final teardown keeps that reason.
func TestSessionLimitIsConnDone(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	events{b}.State(engine.StateDone, "Inactive tunnel, disconnected (inactive 5s)")
	if b.status.Major != api.StatusMajorConnection || b.status.Minor != api.StatusMinorConnDone ||
		b.status.Message != "Inactive tunnel, disconnected (inactive 5s)" {
		t.Fatalf("status %s", b.status)
	}
	b.teardown(context.Background())
	if b.status.Minor != api.StatusMinorConnDone || b.status.Message == "" {
		t.Fatalf("teardown replaced the reason: %s", b.status)
	}
}

// A failed attempt that the engine retries (a TLS or certificate failure,
// a push reply that restarts the connection) shows its reason in the
// session status while the session stays; ping-exit is CONN_FAILED.
func TestRetriedFailureReasonInStatus(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	const reason = `TLS handshake with 198.18.0.1:1194/udp: server certificate "CN=server" is not valid now`
	events{b}.State(engine.StateReconnecting, reason)
	if b.status.Major != api.StatusMajorConnection || b.status.Minor != api.StatusMinorConnReconnecting || b.status.Message != reason {
		t.Errorf("status %s, want CONN_RECONNECTING with the reason", b.status)
	}
	events{b}.State(engine.StateFailed, "ping-exit: nothing received from 198.18.0.1:1194/udp for 30s")
	if b.status.Minor != api.StatusMinorConnFailed || b.status.Message == "" {
		t.Errorf("ping-exit: status %s, want CONN_FAILED with the reason", b.status)
	}
}

// Options.Connected runs after CONN_CONNECTED was reported (the helper
// settles the backend's memory there), once per connection, and for no
// other state; not at once on the engine's goroutine but settleDelay
// later, when the session manager's relay of CONN_CONNECTED and the
// front-end's exit are over.
func TestConnectedHook(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	var calls []api.StatusMinor
	b.opts.Connected = func() { calls = append(calls, b.status.Minor) }
	var held []func()
	b.afterFunc = func(d time.Duration, f func()) *time.Timer {
		if d != settleDelay {
			t.Errorf("Connected scheduled after %v, want %v", d, settleDelay)
		}
		held = append(held, f)
		return time.NewTimer(time.Hour) // stopped by the next one or never fired
	}
	for _, s := range []engine.State{engine.StateConnecting, engine.StateConnected, engine.StateReconnecting, engine.StateConnecting, engine.StateConnected} {
		events{b}.State(s, "")
		if len(calls) != 0 {
			t.Fatalf("Connected ran on the engine's goroutine at %v", s)
		}
	}
	for _, f := range held {
		f()
	}
	if len(calls) != 2 || calls[0] != api.StatusMinorConnConnected || calls[1] != api.StatusMinorConnConnected {
		t.Errorf("Connected called with statuses %v, want twice after CONN_CONNECTED", calls)
	}
}

// Options.Online runs at once after each CONN_CONNECTED was reported, on
// the engine's goroutine (the program gives the scheduler its CPUs back
// there, before the data flows), and for no other state.
func TestOnlineHook(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	var calls []api.StatusMinor
	b.opts.Online = func() { calls = append(calls, b.status.Minor) }
	b.afterFunc = func(time.Duration, func()) *time.Timer { return time.NewTimer(time.Hour) }
	for i, s := range []engine.State{engine.StateConnecting, engine.StateConnected, engine.StateReconnecting, engine.StateConnecting, engine.StateConnected} {
		events{b}.State(s, "")
		want := 0
		if i >= 1 {
			want = 1
		}
		if i >= 4 {
			want = 2
		}
		if len(calls) != want {
			t.Fatalf("after %v Online ran %d times, want %d", s, len(calls), want)
		}
	}
	for _, m := range calls {
		if m != api.StatusMinorConnConnected {
			t.Errorf("Online ran with status %v, want CONN_CONNECTED reported first", m)
		}
	}
}
