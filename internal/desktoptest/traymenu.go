package desktoptest

import (
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// MenuEntry is one item of an exported com.canonical.dbusmenu menu.
type MenuEntry struct {
	ID       int32
	Label    string
	Enabled  bool
	Children []MenuEntry
}

func parseLayout(v []any) MenuEntry {
	e := MenuEntry{Enabled: true}
	if len(v) != 3 {
		return e
	}
	e.ID, _ = v[0].(int32)
	if props, ok := v[1].(map[string]dbus.Variant); ok {
		if l, ok := props["label"].Value().(string); ok {
			e.Label = l
		}
		if en, ok := props["enabled"].Value().(bool); ok {
			e.Enabled = en
		}
	}
	if kids, ok := v[2].([]dbus.Variant); ok {
		for _, k := range kids {
			if kv, ok := k.Value().([]any); ok {
				e.Children = append(e.Children, parseLayout(kv))
			}
		}
	}
	return e
}

// Find returns the first item (depth first) whose label starts with prefix.
func (e MenuEntry) Find(prefix string) (MenuEntry, bool) {
	for _, c := range e.Children {
		if strings.HasPrefix(c.Label, prefix) {
			return c, true
		}
		if f, ok := c.Find(prefix); ok {
			return f, true
		}
	}
	return MenuEntry{}, false
}

// String renders the menu one item per line, submenus indented.
func (e MenuEntry) String() string {
	var b strings.Builder
	var walk func(MenuEntry, string)
	walk = func(m MenuEntry, ind string) {
		for _, c := range m.Children {
			fmt.Fprintf(&b, "%s%s enabled=%v\n", ind, c.Label, c.Enabled)
			walk(c, ind+"  ")
		}
	}
	walk(e, "")
	return b.String()
}

// TrayItem is a StatusNotifierItem seen from a tray host: its properties
// and its menu, read and clicked over D-Bus as a host does.
type TrayItem struct {
	Conn *dbus.Conn
	Item Item
	Menu dbus.ObjectPath
}

// NewTrayItem reads the item's Menu property.
func NewTrayItem(conn *dbus.Conn, it Item) (*TrayItem, error) {
	v, err := conn.Object(it.Bus, it.Path).GetProperty("org.kde.StatusNotifierItem.Menu")
	if err != nil {
		return nil, fmt.Errorf("Menu property: %w", err)
	}
	p, _ := v.Value().(dbus.ObjectPath)
	return &TrayItem{Conn: conn, Item: it, Menu: p}, nil
}

// Layout reads the whole menu.
func (t *TrayItem) Layout() (MenuEntry, error) {
	var rev uint32
	var root []any
	err := t.Conn.Object(t.Item.Bus, t.Menu).Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &root)
	if err != nil {
		return MenuEntry{}, fmt.Errorf("GetLayout: %w", err)
	}
	return parseLayout(root), nil
}

// WaitItem waits until an enabled item starting with prefix exists.
func (t *TrayItem) WaitItem(prefix string, timeout time.Duration) (MenuEntry, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := t.Layout()
		if err != nil {
			return MenuEntry{}, err
		}
		if it, ok := l.Find(prefix); ok && it.Enabled {
			return it, nil
		}
		if time.Now().After(deadline) {
			return MenuEntry{}, fmt.Errorf("no enabled menu item %q within %v; menu:\n%s", prefix, timeout, l)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Click sends the "clicked" event a tray host sends.
func (t *TrayItem) Click(it MenuEntry) error {
	err := t.Conn.Object(t.Item.Bus, t.Menu).Call("com.canonical.dbusmenu.Event", 0, it.ID, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix())).Err
	if err != nil {
		return fmt.Errorf("click %q: %w", it.Label, err)
	}
	return nil
}

// IconPixmap returns the first icon's ARGB bytes.
func (t *TrayItem) IconPixmap() ([]byte, error) {
	v, err := t.Conn.Object(t.Item.Bus, t.Item.Path).GetProperty("org.kde.StatusNotifierItem.IconPixmap")
	if err != nil {
		return nil, fmt.Errorf("IconPixmap: %w", err)
	}
	pix, ok := v.Value().([][]any)
	if !ok || len(pix) == 0 || len(pix[0]) != 3 {
		return nil, nil
	}
	data, _ := pix[0][2].([]byte)
	return data, nil
}
