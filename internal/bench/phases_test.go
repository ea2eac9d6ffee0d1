package bench

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// waitConnected returns only once the clock itself has read CONN_CONNECTED
// (StartSession learns of it from another connection, which may be ahead).
func TestPhaseClockWaitConnected(t *testing.T) {
	c := &phaseClock{ch: make(chan *dbus.Message), done: make(chan struct{}), connected: make(chan struct{}), seen: map[Phase]time.Time{}}
	go c.collect()
	defer func() { close(c.ch); <-c.done }()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.waitConnected(ctx); err == nil {
		t.Fatal("waitConnected returned before CONN_CONNECTED was read")
	}
	status := func(path dbus.ObjectPath, minor api.StatusMinor) *dbus.Message {
		return &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldMember: dbus.MakeVariant("StatusChange"),
			dbus.FieldPath:   dbus.MakeVariant(path),
		}, Body: []any{uint32(api.StatusMajorConnection), uint32(minor), ""}}
	}
	session := dbus.ObjectPath(string(api.PathSessions) + "/s1")
	c.ch <- status(api.PathBackendSession, api.StatusMinorConnConnecting) // the backend's own
	c.ch <- status(session, api.StatusMinorConnConnected)
	c.ch <- status(session, api.StatusMinorConnConnected) // a second one closes nothing twice
	if err := c.waitConnected(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.at(PhaseConnected).IsZero() || c.at(PhaseConnecting).IsZero() {
		t.Errorf("milestones not recorded: %v", c.seen)
	}
}
