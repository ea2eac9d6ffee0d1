package desktoptest

import (
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

const watcherName = "org.kde.StatusNotifierWatcher"

// Watcher is a minimal org.kde.StatusNotifierWatcher: it accepts item
// registrations, claims a host is present, and records who registered.
type Watcher struct {
	conn  *dbus.Conn
	props *prop.Properties

	mu    sync.Mutex
	items []Item
	reg   chan Item
}

// Item is a registered StatusNotifierItem: the bus name of its connection
// and its object path.
type Item struct {
	Bus  string
	Path dbus.ObjectPath
}

// StartWatcher owns org.kde.StatusNotifierWatcher on the bus at address.
func StartWatcher(address string) (*Watcher, error) {
	conn, err := dbus.Connect(address)
	if err != nil {
		return nil, err
	}
	w := &Watcher{conn: conn, reg: make(chan Item, 16)}
	if err := conn.ExportMethodTable(map[string]any{
		"RegisterStatusNotifierItem": w.register,
		"RegisterStatusNotifierHost": func(string) *dbus.Error { return nil },
	}, "/StatusNotifierWatcher", watcherName); err != nil {
		conn.Close()
		return nil, err
	}
	w.props, err = prop.Export(conn, "/StatusNotifierWatcher", prop.Map{watcherName: {
		"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
		"IsStatusNotifierHostRegistered": {Value: true, Emit: prop.EmitTrue},
		"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitTrue},
	}})
	if err != nil {
		conn.Close()
		return nil, err
	}
	r, err := conn.RequestName(watcherName, dbus.NameFlagDoNotQueue)
	if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		conn.Close()
		return nil, fmt.Errorf("own %s: %v %v", watcherName, r, err)
	}
	return w, nil
}

func (w *Watcher) register(svc string, sender dbus.Sender) *dbus.Error {
	it := Item{Bus: svc, Path: "/StatusNotifierItem"}
	if strings.HasPrefix(svc, "/") {
		it = Item{Bus: string(sender), Path: dbus.ObjectPath(svc)}
	}
	w.mu.Lock()
	w.items = append(w.items, it)
	names := make([]string, len(w.items))
	for i, x := range w.items {
		names[i] = x.Bus + string(x.Path)
	}
	w.mu.Unlock()
	w.props.SetMust(watcherName, "RegisteredStatusNotifierItems", names)
	_ = w.conn.Emit("/StatusNotifierWatcher", watcherName+".StatusNotifierItemRegistered", it.Bus+string(it.Path))
	select {
	case w.reg <- it:
	default:
	}
	return nil
}

// Registered delivers each item as it registers.
func (w *Watcher) Registered() <-chan Item { return w.reg }

// Conn is the watcher's connection, usable to call the items.
func (w *Watcher) Conn() *dbus.Conn { return w.conn }

// Close gives the name up and disconnects.
func (w *Watcher) Close() error { return w.conn.Close() }
