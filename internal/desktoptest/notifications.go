package desktoptest

import (
	"fmt"
	"sync"

	"github.com/godbus/dbus/v5"
)

const notifyName = "org.freedesktop.Notifications"

// Notification is one recorded Notify call.
type Notification struct {
	AppName    string
	ReplacesID uint32
	Summary    string
	Body       string
	Actions    []string
	Urgency    byte // the "urgency" hint; 1 (normal) when absent
	ID         uint32
}

// NotificationServer implements org.freedesktop.Notifications and records
// every Notify call.
type NotificationServer struct {
	conn *dbus.Conn

	mu     sync.Mutex
	calls  []Notification
	nextID uint32
	notify chan Notification
}

// StartNotificationServer owns org.freedesktop.Notifications on the bus.
func StartNotificationServer(address string) (*NotificationServer, error) {
	conn, err := dbus.Connect(address)
	if err != nil {
		return nil, err
	}
	s := &NotificationServer{conn: conn, notify: make(chan Notification, 64)}
	err = conn.ExportMethodTable(map[string]any{
		"Notify": s.notifyCall,
		"GetCapabilities": func() ([]string, *dbus.Error) {
			return []string{"body", "actions", "persistence"}, nil
		},
		"GetServerInformation": func() (string, string, string, string, *dbus.Error) {
			return "desktoptest", "ovpn3go", "1", "1.2", nil
		},
		"CloseNotification": func(uint32) *dbus.Error { return nil },
	}, "/org/freedesktop/Notifications", notifyName)
	if err != nil {
		conn.Close()
		return nil, err
	}
	r, err := conn.RequestName(notifyName, dbus.NameFlagDoNotQueue)
	if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		conn.Close()
		return nil, fmt.Errorf("own %s: %v %v", notifyName, r, err)
	}
	return s, nil
}

func (s *NotificationServer) notifyCall(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n := Notification{AppName: app, ReplacesID: replaces, Summary: summary, Body: body, Actions: actions, Urgency: 1}
	if v, ok := hints["urgency"]; ok {
		if u, ok := v.Value().(byte); ok {
			n.Urgency = u
		}
	}
	s.mu.Lock()
	if replaces != 0 {
		n.ID = replaces
	} else {
		s.nextID++
		n.ID = s.nextID
	}
	s.calls = append(s.calls, n)
	s.mu.Unlock()
	select {
	case s.notify <- n:
	default:
	}
	return n.ID, nil
}

// Calls returns every Notify call so far.
func (s *NotificationServer) Calls() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.calls...)
}

// Notified delivers each call as it arrives.
func (s *NotificationServer) Notified() <-chan Notification { return s.notify }

// InvokeAction emits ActionInvoked for a notification, as a person clicking
// its action button would.
func (s *NotificationServer) InvokeAction(id uint32, key string) error {
	return s.conn.Emit("/org/freedesktop/Notifications", notifyName+".ActionInvoked", id, key)
}

// Close disconnects.
func (s *NotificationServer) Close() error { return s.conn.Close() }
