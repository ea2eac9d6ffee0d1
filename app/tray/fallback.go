package tray

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"
	"github.com/godbus/dbus/v5"
)

// StatusNotifierWatcher is the bus name a tray host owns.
const StatusNotifierWatcher = "org.kde.StatusNotifierWatcher"

// BusHostWatcher watches org.kde.StatusNotifierWatcher on a session bus.
type BusHostWatcher struct{ Conn *dbus.Conn }

// Watch reports whether the watcher name has an owner and every change.
func (b BusHostWatcher) Watch(ctx context.Context) (bool, <-chan bool, error) {
	opts := []dbus.MatchOption{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, StatusNotifierWatcher)}
	if err := b.Conn.AddMatchSignalContext(ctx, opts...); err != nil {
		return false, nil, fmt.Errorf("watch the tray host: %w", err)
	}
	sigs := make(chan *dbus.Signal, 8)
	b.Conn.Signal(sigs)
	var has bool
	if err := b.Conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, StatusNotifierWatcher).Store(&has); err != nil {
		b.Conn.RemoveSignal(sigs)
		return false, nil, fmt.Errorf("look for the tray host: %w", err)
	}
	out := make(chan bool, 1)
	go func() {
		defer close(out)
		defer b.Conn.RemoveSignal(sigs)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-sigs:
				if !ok {
					return
				}
				if s.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(s.Body) != 3 {
					continue
				}
				if n, _ := s.Body[0].(string); n != StatusNotifierWatcher {
					continue
				}
				newOwner, _ := s.Body[2].(string)
				select {
				case out <- newOwner != "":
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return has, out, nil
}

// watchHost starts watching for a tray host and applies the initial state.
func (t *Tray) watchHost(ctx context.Context) <-chan bool {
	if t.opt.Watcher == nil {
		return nil
	}
	present, changes, err := t.opt.Watcher.Watch(ctx)
	if err != nil {
		t.log.Warn("cannot tell whether a system tray runs; assuming none", "err", err)
		present = false
	}
	t.setHost(present)
	return changes
}

// NoTrayMessage is what the main window says once when no tray host runs.
func NoTrayMessage() string {
	return lang.L("No system tray was found (on GNOME, install and enable the “AppIndicator and KStatusNotifierItem Support” extension). ovpn3go shows this window instead and moves to the tray when one appears.")
}

// setHost shows the main window while no tray host runs and hides it when
// one appears.
func (t *Tray) setHost(up bool) {
	t.mu.Lock()
	t.hostUp = up
	say := !up && !t.saidNoHost
	if say {
		t.saidNoHost = true
	}
	t.mu.Unlock()
	m := t.Model()
	onUI(func() {
		t.mu.Lock()
		w := t.mainWin
		menu := t.menu
		t.mu.Unlock()
		if up {
			if w != nil {
				w.Hide()
				t.mu.Lock()
				t.mainShown = false
				t.mu.Unlock()
			}
			return
		}
		if w == nil {
			w = t.app.NewWindow("ovpn3go")
			w.Resize(fyne.NewSize(460, 360))
			w.CenterOnScreen()
			w.SetCloseIntercept(func() { t.app.Quit() })
			t.mu.Lock()
			t.mainWin = w
			t.mu.Unlock()
		}
		if menu == nil {
			menu = BuildMenu(m, t.Do)
		}
		w.SetContent(t.mainContent(menu, m))
		w.Show()
		t.mu.Lock()
		t.mainShown = true
		t.mu.Unlock()
	})
	if say && t.notes != nil {
		t.log.Info("no StatusNotifierItem host; showing the main window")
	}
}

// MainWindow is the fallback window, nil while a tray host runs and none
// was ever needed.
func (t *Tray) MainWindow() fyne.Window {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mainWin
}

// MainWindowShown reports whether the fallback window is on screen.
func (t *Tray) MainWindowShown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mainShown
}

// HostPresent reports whether the tray believes a tray host runs.
func (t *Tray) HostPresent() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hostUp
}

// mainContent renders the same controls as the menu as a window: the
// no-tray note (once it was said), then one button per item and one card
// per session submenu.
func (t *Tray) mainContent(menu *fyne.Menu, m Model) fyne.CanvasObject {
	box := container.NewVBox()
	t.mu.Lock()
	said := t.saidNoHost && !t.hostUp
	t.mu.Unlock()
	if said {
		note := widget.NewLabel(NoTrayMessage())
		note.Wrapping = fyne.TextWrapWord
		note.Importance = widget.WarningImportance
		box.Add(note)
	}
	box.Add(widget.NewLabelWithStyle(m.Tooltip(), fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	for _, it := range menu.Items {
		switch {
		case it.IsSeparator:
			box.Add(widget.NewSeparator())
		case it.ChildMenu != nil:
			row := container.NewHBox()
			for _, c := range it.ChildMenu.Items {
				if c.IsSeparator {
					continue
				}
				b := widget.NewButton(c.Label, c.Action)
				if c.Disabled {
					b.Disable()
				}
				row.Add(b)
			}
			box.Add(widget.NewCard("", it.Label, row))
		case it.Action == nil:
			box.Add(widget.NewLabel(it.Label))
		default:
			b := widget.NewButton(it.Label, it.Action)
			if it.Disabled {
				b.Disable()
			}
			box.Add(b)
		}
	}
	return container.NewVScroll(box)
}
