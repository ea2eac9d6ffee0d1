// Package notify sends desktop notifications through
// org.freedesktop.Notifications on the session bus, called directly rather
// than through Fyne so that a notification can replace an earlier one
// (replaces_id), carry an urgency and offer action buttons.
package notify

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

const (
	name  = "org.freedesktop.Notifications"
	path  = dbus.ObjectPath("/org/freedesktop/Notifications")
	iface = "org.freedesktop.Notifications"
)

// Urgency levels of the specification.
const (
	UrgencyLow      byte = 0
	UrgencyNormal   byte = 1
	UrgencyCritical byte = 2
)

// Message is one notification.
type Message struct {
	Summary  string
	Body     string
	Urgency  byte
	Replaces uint32            // id of the bubble this one replaces, 0 for a new one
	Actions  map[string]string // action key → button label
}

// Client sends notifications for one application.
type Client struct {
	Conn         *dbus.Conn
	AppName      string // shown by the server
	DesktopEntry string // the "desktop-entry" hint: the .desktop file's name without suffix
}

// Notify shows m and returns its id (pass it as Replaces to update it).
func (c *Client) Notify(ctx context.Context, m Message) (uint32, error) {
	var actions []string
	for k, label := range m.Actions {
		actions = append(actions, k, label)
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(m.Urgency)}
	if c.DesktopEntry != "" {
		hints["desktop-entry"] = dbus.MakeVariant(c.DesktopEntry)
	}
	var id uint32
	err := c.Conn.Object(name, path).CallWithContext(ctx, iface+".Notify", 0,
		c.AppName, m.Replaces, "", m.Summary, m.Body, actions, hints, int32(-1)).Store(&id)
	if err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	return id, nil
}

// Invoked is an ActionInvoked signal: the person clicked Action on the
// notification ID.
type Invoked struct {
	ID     uint32
	Action string
}

// Actions delivers ActionInvoked signals until ctx ends.
func (c *Client) Actions(ctx context.Context) (<-chan Invoked, error) {
	opts := []dbus.MatchOption{dbus.WithMatchInterface(iface), dbus.WithMatchMember("ActionInvoked")}
	if err := c.Conn.AddMatchSignalContext(ctx, opts...); err != nil {
		return nil, fmt.Errorf("notify actions: %w", err)
	}
	sigs := make(chan *dbus.Signal, 16)
	c.Conn.Signal(sigs)
	out := make(chan Invoked, 4)
	go func() {
		defer close(out)
		defer c.Conn.RemoveSignal(sigs)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-sigs:
				if !ok {
					return
				}
				if s.Name != iface+".ActionInvoked" || len(s.Body) != 2 {
					continue
				}
				id, _ := s.Body[0].(uint32)
				key, _ := s.Body[1].(string)
				select {
				case out <- Invoked{id, key}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
