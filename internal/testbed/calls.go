package testbed

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
)

// CallMonitor records the method calls a bus carries, to count round
// trips. Like Watcher it is a D-Bus monitor (needs root); it sees calls to
// the bus driver too (GetNameOwner, AddMatch, …).
type CallMonitor struct {
	conn *dbus.Conn
	ch   chan *dbus.Message
	done chan struct{}

	mu      sync.Mutex
	calls   []MethodCall
	changed chan struct{}
}

// MethodCall is one method call as the monitor saw it.
type MethodCall struct {
	Sender      string // unique name of the caller
	Destination string // as the caller addressed it (a well-known or unique name)
	Path        dbus.ObjectPath
	Interface   string
	Member      string
	Body        []any
}

// String is "sender → destination path iface.member".
func (c MethodCall) String() string {
	return fmt.Sprintf("%s → %s %s %s.%s", c.Sender, c.Destination, c.Path, c.Interface, c.Member)
}

// MethodCallOf describes a method call message.
func MethodCallOf(msg *dbus.Message) MethodCall {
	c := MethodCall{Body: msg.Body}
	c.Sender, _ = msg.Headers[dbus.FieldSender].Value().(string)
	c.Destination, _ = msg.Headers[dbus.FieldDestination].Value().(string)
	c.Path, _ = msg.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
	c.Interface, _ = msg.Headers[dbus.FieldInterface].Value().(string)
	c.Member, _ = msg.Headers[dbus.FieldMember].Value().(string)
	return c
}

// syncMarker prefixes the bus name Sync asks about; its calls are not
// recorded.
const syncMarker = "org.ovpn3go.test.CallMonitorSync"

var syncSeq atomic.Uint64

// MonitorCalls connects to the bus at addr and records every method call
// from then on.
func MonitorCalls(addr string) (*CallMonitor, error) {
	conn, ch, err := becomeMonitor(addr, []string{"type='method_call'"}, "monitor calls")
	if err != nil {
		return nil, err
	}
	m := &CallMonitor{conn: conn, ch: ch, done: make(chan struct{}), changed: make(chan struct{})}
	go m.collect()
	return m, nil
}

func (m *CallMonitor) collect() {
	defer close(m.done)
	for msg := range m.ch {
		if msg.Type != dbus.TypeMethodCall {
			continue
		}
		c := MethodCallOf(msg)
		m.mu.Lock()
		m.calls = append(m.calls, c)
		close(m.changed)
		m.changed = make(chan struct{})
		m.mu.Unlock()
	}
}

// Sync returns once the monitor has seen every call the bus carried before
// Sync was called: conn (any connection) asks the bus driver about a
// marker name and Sync waits for that question, which the bus hands to
// the monitor after everything it handled before. Calls finished before
// Sync (their replies received) are then all recorded.
func (m *CallMonitor) Sync(ctx context.Context, conn *dbus.Conn) error {
	marker := fmt.Sprintf("%s%d", syncMarker, syncSeq.Add(1))
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, marker).Err; err != nil {
		return fmt.Errorf("monitor sync: %w", err)
	}
	for {
		m.mu.Lock()
		for _, c := range m.calls {
			if c.Member == "NameHasOwner" && len(c.Body) == 1 && c.Body[0] == marker {
				m.mu.Unlock()
				return nil
			}
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-m.done:
			return fmt.Errorf("monitor sync: monitor closed")
		case <-ctx.Done():
			return fmt.Errorf("monitor sync: %w", ctx.Err())
		}
	}
}

// Calls returns the calls recorded so far, oldest first, without those of
// Sync.
func (m *CallMonitor) Calls() []MethodCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MethodCall, 0, len(m.calls))
	for _, c := range m.calls {
		if c.Member == "NameHasOwner" && len(c.Body) == 1 {
			if s, _ := c.Body[0].(string); len(s) > len(syncMarker) && s[:len(syncMarker)] == syncMarker {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// Reset forgets the calls recorded so far.
func (m *CallMonitor) Reset() {
	m.mu.Lock()
	m.calls = nil
	m.mu.Unlock()
}

// Close ends the monitor (see Watcher.Close for the order).
func (m *CallMonitor) Close() error {
	m.conn.Eavesdrop(nil)
	close(m.ch)
	err := m.conn.Close()
	<-m.done
	return err
}
