package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// Phase names the milestones of one session start as the bus carries them.
type Phase string

// The milestones of a session start, in the order they happen.
const (
	PhaseNewTunnel  Phase = "NewTunnel"  // the client's call reaches the bus
	PhaseRegistered Phase = "registered" // the backend's RegistrationRequest (its process runs and is on the bus)
	PhaseConnecting Phase = "connecting" // the backend's CONN_CONNECTING: Connect reached it
	PhaseEstablish  Phase = "Establish"  // the backend asks netcfg for the TUN device: Establish or EstablishWith (control channel up, PUSH_REPLY in)
	PhaseConnected  Phase = "connected"  // CONN_CONNECTED
)

// Phases lists the milestones in order.
var Phases = []Phase{PhaseNewTunnel, PhaseRegistered, PhaseConnecting, PhaseEstablish, PhaseConnected}

// phaseClock timestamps each milestone's first appearance on the bus: a
// monitor connection (root) sees the calls and signals between the client,
// the helper, the backend and netcfg as the bus delivers them, so nothing
// in ovpn3go needs instrumenting and the times are those of the bus.
type phaseClock struct {
	conn      *dbus.Conn
	ch        chan *dbus.Message
	done      chan struct{}
	connected chan struct{} // closed when CONN_CONNECTED was seen

	mu   sync.Mutex
	seen map[Phase]time.Time
	// calls are the method calls the bus carried until CONN_CONNECTED:
	// the round trips of a session start (calls to the bus driver too).
	calls []testbed.MethodCall
}

func startPhaseClock(addr string) (*phaseClock, error) {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return nil, fmt.Errorf("phase clock: connect %s: %w", addr, err)
	}
	rules := []string{
		"type='method_call'", // NewTunnel, Establish, and every call to count
		"type='signal',interface='" + api.InterfaceBackends + "',member='RegistrationRequest'",
		"type='signal',interface='" + api.InterfaceSessions + "',member='StatusChange'",
		// The backend's own CONN_CONNECTING: its EstablishWith follows it
		// on the same connection, the session manager's relay may not.
		"type='signal',interface='" + api.InterfaceBackends + "',member='StatusChange'",
	}
	if err := conn.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, rules, uint32(0)).Err; err != nil {
		conn.Close()
		return nil, fmt.Errorf("phase clock: BecomeMonitor: %w", err)
	}
	c := &phaseClock{conn: conn, ch: make(chan *dbus.Message, 4096), done: make(chan struct{}), connected: make(chan struct{}), seen: map[Phase]time.Time{}}
	conn.Eavesdrop(c.ch)
	go c.collect()
	return c, nil
}

// collect runs until close closes c.ch.
func (c *phaseClock) collect() {
	defer close(c.done)
	for m := range c.ch {
		now := time.Now()
		p, ok := phaseOf(m)
		c.mu.Lock()
		if _, connected := c.seen[PhaseConnected]; !connected && m.Type == dbus.TypeMethodCall {
			c.calls = append(c.calls, testbed.MethodCallOf(m))
		}
		if _, dup := c.seen[p]; ok && !dup {
			c.seen[p] = now
			if p == PhaseConnected {
				close(c.connected)
			}
		}
		c.mu.Unlock()
	}
}

// phaseOf says which milestone a monitored message is, if any.
func phaseOf(m *dbus.Message) (Phase, bool) {
	member, _ := m.Headers[dbus.FieldMember].Value().(string)
	switch {
	case m.Type == dbus.TypeMethodCall && member == "NewTunnel":
		return PhaseNewTunnel, true
	case m.Type == dbus.TypeMethodCall && (member == "Establish" || member == "EstablishWith"):
		return PhaseEstablish, true
	case m.Type == dbus.TypeSignal && member == "RegistrationRequest":
		return PhaseRegistered, true
	case m.Type == dbus.TypeSignal && member == "StatusChange" && len(m.Body) == 3:
		path, _ := m.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
		ma, _ := m.Body[0].(uint32)
		mi, _ := m.Body[1].(uint32)
		if ma != uint32(api.StatusMajorConnection) {
			return "", false
		}
		switch {
		case path == api.PathBackendSession && mi == uint32(api.StatusMinorConnConnecting):
			return PhaseConnecting, true
		case strings.HasPrefix(string(path), string(api.PathSessions)+"/") && mi == uint32(api.StatusMinorConnConnected):
			return PhaseConnected, true
		}
	}
	return "", false
}

// since returns each milestone's time after NewTunnel; an error names the
// milestones the bus did not carry.
func (c *phaseClock) since() (map[Phase]time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t0, ok := c.seen[PhaseNewTunnel]
	if !ok {
		return nil, fmt.Errorf("phase clock: no NewTunnel call seen")
	}
	out := map[Phase]time.Duration{}
	var missing []string
	for _, p := range Phases {
		t, ok := c.seen[p]
		if !ok {
			missing = append(missing, string(p))
			continue
		}
		out[p] = t.Sub(t0)
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("phase clock: not seen: %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// waitConnected returns once the clock has taken CONN_CONNECTED in. The
// monitor is a connection of its own: another connection that saw the
// signal says nothing about whether this one has read it yet.
func (c *phaseClock) waitConnected(ctx context.Context) error {
	select {
	case <-c.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("phase clock: CONN_CONNECTED not seen: %w", ctx.Err())
	}
}

// at is when the bus carried milestone p (zero if it did not).
func (c *phaseClock) at(p Phase) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[p]
}

// callsUntilConnected returns the method calls seen until CONN_CONNECTED.
func (c *phaseClock) callsUntilConnected() []testbed.MethodCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]testbed.MethodCall(nil), c.calls...)
}

// close ends the monitor; the channel is detached first (see
// testbed.Watcher.Close for why).
func (c *phaseClock) close() {
	c.conn.Eavesdrop(nil)
	close(c.ch)
	c.conn.Close()
	<-c.done
}
