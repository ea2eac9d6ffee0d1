package testbed

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
)

// Watcher records signals seen on a bus. It is a D-Bus monitor
// (org.freedesktop.DBus.Monitoring.BecomeMonitor), so it sees unicast
// signals too: the session manager sends some of its signals (StatusChange)
// only to the log service, exactly like openvpn3-linux, and a test must not
// depend on that choice. Becoming a monitor needs the bus's own uid (root).
type Watcher struct {
	conn *dbus.Conn
	ch   chan *dbus.Message
	done chan struct{}

	mu      sync.Mutex
	signals []*dbus.Signal
	changed chan struct{} // closed and replaced whenever a signal arrives
}

// WatchSignals connects to the bus at addr and records every signal
// matching one of the match rules (D-Bus match-rule syntax, e.g.
// "type='signal',interface='net.openvpn.v3.sessions'"). Only signal rules
// are allowed: a monitor must never be asked to answer a method call.
// Start the watcher before the action whose signals it should see; signals
// that arrive while it becomes a monitor may be missed.
func WatchSignals(addr string, rules ...string) (*Watcher, error) {
	for _, r := range rules {
		if !strings.Contains(r, "type='signal'") {
			return nil, fmt.Errorf("watch rule %q: must contain type='signal'", r)
		}
	}
	conn, ch, err := becomeMonitor(addr, rules, "watch signals")
	if err != nil {
		return nil, err
	}
	w := &Watcher{conn: conn, ch: ch, done: make(chan struct{}), changed: make(chan struct{})}
	go w.collect()
	return w, nil
}

// collect runs until Close closes w.ch.
func (w *Watcher) collect() {
	defer close(w.done)
	for m := range w.ch {
		if m.Type != dbus.TypeSignal {
			continue
		}
		s := &dbus.Signal{Body: m.Body}
		s.Sender, _ = m.Headers[dbus.FieldSender].Value().(string)
		s.Path, _ = m.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
		iface, _ := m.Headers[dbus.FieldInterface].Value().(string)
		member, _ := m.Headers[dbus.FieldMember].Value().(string)
		s.Name = iface + "." + member
		w.mu.Lock()
		w.signals = append(w.signals, s)
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// Signals returns the signals recorded so far, oldest first.
func (w *Watcher) Signals() []*dbus.Signal {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*dbus.Signal(nil), w.signals...)
}

// Wait returns the first recorded signal (from the start of the watch)
// for which match is true, waiting for it until ctx ends.
func (w *Watcher) Wait(ctx context.Context, match func(*dbus.Signal) bool) (*dbus.Signal, error) {
	seen := 0
	for {
		w.mu.Lock()
		for ; seen < len(w.signals); seen++ {
			if match(w.signals[seen]) {
				s := w.signals[seen]
				w.mu.Unlock()
				return s, nil
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-w.done:
			return nil, fmt.Errorf("signal watcher closed")
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for signal: %w", ctx.Err())
		}
	}
}

// Close ends the monitor connection and the collecting goroutine.
//
// The channel is detached before it is closed: godbus's Close closes an
// eavesdrop channel but leaves it installed, so its reader goroutine can
// still send one more message into it and panic (godbus v5.2.4,
// conn.go inWorker). After Eavesdrop(nil) returns the reader holds no
// reference to w.ch, so closing it here is safe.
func (w *Watcher) Close() error {
	w.conn.Eavesdrop(nil)
	close(w.ch)
	err := w.conn.Close()
	<-w.done
	return err
}

// FormatSignal renders a signal for logs: "path iface.member [args]".
func FormatSignal(s *dbus.Signal) string {
	return fmt.Sprintf("%s %s %v", s.Path, s.Name, s.Body)
}

// becomeMonitor connects to the bus at addr as a monitor of what rules
// match and returns the connection and the channel its messages arrive on.
// godbus drops messages addressed to other connections unless they are
// taken through Eavesdrop, which never blocks the reader: a message that
// finds the channel full is lost, hence the generous buffer (the
// collectors only append).
func becomeMonitor(addr string, rules []string, what string) (*dbus.Conn, chan *dbus.Message, error) {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: connect %s: %w", what, addr, err)
	}
	if err := conn.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, rules, uint32(0)).Err; err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: BecomeMonitor: %w", what, err)
	}
	ch := make(chan *dbus.Message, 4096)
	conn.Eavesdrop(ch)
	return conn, ch, nil
}
