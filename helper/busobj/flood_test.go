package busobj_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// floodFixture is a server with small per-sender limits whose Block
// method waits until released or until its caller's context ends.
type floodFixture struct {
	srv       *busobj.Server
	addr      string
	release   chan struct{}
	started   chan string
	cancelled chan string

	mu       sync.Mutex
	recorded []string
}

func startFlood(t *testing.T, lim busobj.Limits) *floodFixture {
	t.Helper()
	testenv.RequireRoot(t)
	f := &floodFixture{addr: busobjtest.StartBus(t), release: make(chan struct{}),
		started: make(chan string, 1024), cancelled: make(chan string, 1024)}
	srv, err := busobj.ConnectWithLimits(context.Background(), f.addr, nil, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	f.srv = srv
	s := []busobj.Arg{{Name: "s", Type: "s"}}
	err = srv.Export(testPath, &busobj.Interface{Name: testIface, Methods: []busobj.Method{
		{Name: "Block", In: s, Handler: func(c *busobj.Call) ([]any, error) {
			f.started <- c.Args[0].(string)
			select {
			case <-f.release:
				return nil, nil
			case <-c.Ctx.Done():
				f.cancelled <- c.Args[0].(string)
				return nil, c.Ctx.Err()
			}
		}},
		{Name: "Record", In: s, Handler: func(c *busobj.Call) ([]any, error) {
			f.mu.Lock()
			f.recorded = append(f.recorded, c.Args[0].(string))
			f.mu.Unlock()
			return nil, nil
		}},
		{Name: "Echo", In: s, Out: s, Handler: func(c *busobj.Call) ([]any, error) { return []any{c.Args[0]}, nil }},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.RequestName(testName); err != nil {
		t.Fatal(err)
	}
	return f
}

func echo(t *testing.T, conn *dbus.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out string
	if err := conn.Object(testName, testPath).CallWithContext(ctx, testIface+".Echo", 0, "ping").Store(&out); err != nil || out != "ping" {
		t.Fatalf("Echo = %q, %v", out, err)
	}
}

// TestCallFloodBounded: one sender's flood of blocking calls occupies at
// most WorkersPerSender goroutines and QueuePerSender queued calls, the rest
// are refused with ErrBusy, another sender is still served, and when the
// flooder leaves its running calls are cancelled and its queued ones never run.
func TestCallFloodBounded(t *testing.T) {
	lim := busobj.Limits{WorkersPerSender: 2, QueuePerSender: 8, SignalsPerSender: 16}
	f := startFlood(t, lim)
	flooder := busobjtest.Dial(t, f.addr)
	victim := busobjtest.Dial(t, f.addr)
	echo(t, victim)
	base := busobjtest.ServerGoroutines()

	const n = 100 // under the bus's max_replies_per_connection (128)
	calls := make([]*dbus.Call, n)
	obj := flooder.Object(testName, testPath)
	for i := range calls {
		calls[i] = obj.Go(testIface+".Block", 0, nil, fmt.Sprint(i))
	}
	// The first WorkersPerSender calls to arrive are the ones running.
	first := map[string]bool{}
	for range lim.WorkersPerSender {
		first[<-f.started] = true
	}
	for i := range lim.WorkersPerSender {
		if !first[fmt.Sprint(i)] {
			t.Errorf("calls %v run, want the first %d sent", first, lim.WorkersPerSender)
		}
	}
	busy := api.ErrorName(api.DomainRequest)
	for _, c := range calls[lim.WorkersPerSender+lim.QueuePerSender:] {
		<-c.Done
		var de dbus.Error
		if !errors.As(c.Err, &de) || de.Name != busy {
			t.Fatalf("call over the bound: %v, want %s", c.Err, busy)
		}
	}
	if g := busobjtest.ServerGoroutines(); g > base+lim.WorkersPerSender {
		t.Errorf("%d goroutines during the flood, %d before it: not bounded by WorkersPerSender=%d", g, base, lim.WorkersPerSender)
	}
	echo(t, victim) // served while the flooder's workers are all blocked

	_ = flooder.Close()
	for range lim.WorkersPerSender {
		select {
		case <-f.cancelled:
		case <-time.After(30 * time.Second):
			t.Fatal("the flooder left but its running calls were not cancelled")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.srv.PendingSenders() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d senders still have work after the flooder left", f.srv.PendingSenders())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(f.started) != 0 {
		t.Errorf("%d queued calls of the vanished flooder ran", len(f.started))
	}
}

// TestCallsStartInOrder: with one worker per sender, one sender's calls run
// in the order sent (godbus alone runs each on its own goroutine).
func TestCallsStartInOrder(t *testing.T) {
	f := startFlood(t, busobj.Limits{WorkersPerSender: 1, QueuePerSender: 200})
	conn := busobjtest.Dial(t, f.addr)
	obj := conn.Object(testName, testPath)
	var want []string
	calls := make([]*dbus.Call, 100)
	for i := range calls {
		want = append(want, fmt.Sprint(i))
		calls[i] = obj.Go(testIface+".Record", 0, nil, want[i])
	}
	for _, c := range calls {
		if err := (<-c.Done).Err; err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fmt.Sprint(f.recorded) != fmt.Sprint(want) {
		t.Errorf("calls ran in the order %v", f.recorded)
	}
}

// TestSignalFloodBounded: unicast signals flooded at the server's
// connection while nobody reads its signal channel cost no goroutines,
// at most SignalsPerSender of them wait, and another sender's signals
// still arrive, in order.
func TestSignalFloodBounded(t *testing.T) {
	lim := busobj.Limits{SignalsPerSender: 16}
	f := startFlood(t, lim)
	ch := make(chan *dbus.Signal) // not read until the end
	f.srv.Conn().Signal(ch)
	t.Cleanup(func() { f.srv.Conn().RemoveSignal(ch) })
	flooder := busobjtest.Dial(t, f.addr)
	victim := busobjtest.Dial(t, f.addr)
	echo(t, victim)
	echo(t, flooder)
	base := busobjtest.ServerGoroutines()
	dest := f.srv.Conn().Names()[0]
	send := func(conn *dbus.Conn, text string) {
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(testPath),
			dbus.FieldInterface:   dbus.MakeVariant(testIface),
			dbus.FieldMember:      dbus.MakeVariant("Note"),
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(text)),
		}, Body: []any{text}}
		if err := conn.Send(msg, nil).Err; err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2000 {
		send(flooder, fmt.Sprint("flood ", i))
	}
	echo(t, flooder) // the reply follows every flood signal through the server's reader
	for i := range 3 {
		send(victim, fmt.Sprint("victim ", i))
	}
	echo(t, victim)
	// +2: the workers of the two Echo calls may still be on their way out;
	// godbus alone would hold one goroutine per signal the channel missed.
	if g := busobjtest.ServerGoroutines(); g > base+2 {
		t.Errorf("%d goroutines after a signal flood, %d before it", g, base)
	}
	var flood, mine []string
	for len(mine) < 3 {
		select {
		case sig := <-ch:
			if sig.Name != testIface+".Note" {
				continue
			}
			text := sig.Body[0].(string)
			if sig.Sender == victim.Names()[0] {
				mine = append(mine, text)
			} else {
				flood = append(flood, text)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("victim's signals lost: got %v", mine)
		}
	}
	if fmt.Sprint(mine) != "[victim 0 victim 1 victim 2]" {
		t.Errorf("victim's signals arrived as %v", mine)
	}
	if len(flood) != lim.SignalsPerSender {
		t.Errorf("%d flood signals delivered, want the %d that fit", len(flood), lim.SignalsPerSender)
	}
	for i, text := range flood {
		if text != fmt.Sprint("flood ", i) {
			t.Fatalf("flood signals out of order: %v", flood)
		}
	}
}
