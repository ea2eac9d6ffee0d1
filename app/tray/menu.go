package tray

import (
	"fmt"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/lang"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Model is what the tray shows: the profiles, the live sessions and whether
// the helper answers. The menu and the icon are pure functions of it.
type Model struct {
	HelperUp bool
	Profiles []Profile
	Sessions []SessionView
}

// SessionView is one live session with its outstanding attention request.
type SessionView struct {
	Session
	Attention        bool
	AttentionMessage string
}

// State is the session's icon state.
func (s SessionView) State() IconState { return SessionState(s.Status, s.Attention) }

// Icon is the tray icon state: the highest-ranked session state, error
// while the helper is absent, disconnected when nothing runs.
func (m Model) Icon() IconState {
	if !m.HelperUp {
		return IconError
	}
	best := IconDisconnected
	for _, s := range m.Sessions {
		if st := s.State(); st > best {
			best = st
		}
	}
	return best
}

// Tooltip is a one-line summary for the tray item's tooltip.
func (m Model) Tooltip() string {
	switch {
	case !m.HelperUp:
		return lang.L("The VPN service is not running")
	case len(m.Sessions) == 0:
		return lang.L("Not connected")
	case len(m.Sessions) == 1:
		s := m.Sessions[0]
		return lang.L("{{.Profile}}: {{.State}}", map[string]any{"Profile": s.ConfigName, "State": StatusText(s.Status)})
	}
	return lang.L("{{.Count}} VPN sessions", map[string]any{"Count": len(m.Sessions)})
}

// signature is everything BuildMenu's result depends on.
func (m Model) signature() string {
	m.Profiles = append([]Profile(nil), m.Profiles...)
	m.Sessions = append([]SessionView(nil), m.Sessions...)
	m.sorted()
	var b strings.Builder
	fmt.Fprintf(&b, "%v|", m.HelperUp)
	for _, p := range m.Profiles {
		fmt.Fprintf(&b, "p %s %q|", p.Path, p.Name)
	}
	for _, s := range m.Sessions {
		fmt.Fprintf(&b, "s %s %s %q %d %q %d|", s.Path, s.ConfigPath, s.ConfigName, s.State(), StatusText(s.Status), s.Status.Minor)
	}
	return b.String()
}

// sorted orders profiles and sessions by name, so the menu is stable.
func (m *Model) sorted() {
	sort.SliceStable(m.Profiles, func(i, j int) bool { return m.Profiles[i].Name < m.Profiles[j].Name })
	sort.SliceStable(m.Sessions, func(i, j int) bool { return m.Sessions[i].ConfigName < m.Sessions[j].ConfigName })
}

// ActionKind is what a menu item or button does.
type ActionKind int

const (
	ActConnect ActionKind = iota + 1
	ActPause
	ActResume
	ActRestart
	ActDisconnect
	ActStatistics
	ActLog
	ActAuthenticate // open the credential dialog / web sign-in again
	ActImport
	ActSettings
	ActQuit
)

// Action is a request from the menu: Path is the profile (ActConnect) or
// the session it applies to.
type Action struct {
	Kind ActionKind
	Path dbus.ObjectPath
}

// BuildMenu builds the tray menu for m; every item calls do with its
// action. Layout: one "Connect <profile>" per profile (insensitive while a
// session of it runs), one submenu per live session titled with its state,
// then Import profile…, Settings…, Quit.
func BuildMenu(m Model, do func(Action)) *fyne.Menu {
	m.sorted()
	item := func(label string, a Action) *fyne.MenuItem {
		return fyne.NewMenuItem(label, func() { do(a) })
	}
	var items []*fyne.MenuItem
	if !m.HelperUp {
		status := fyne.NewMenuItem(lang.L("The VPN service is not running"), nil)
		status.Disabled = true
		items = append(items, status)
		if len(m.Profiles) > 0 {
			items = append(items, fyne.NewMenuItemSeparator())
		}
	}
	running := map[dbus.ObjectPath]bool{}
	for _, s := range m.Sessions {
		running[s.ConfigPath] = true
	}
	for _, p := range m.Profiles {
		it := item(lang.L("Connect {{.Profile}}", map[string]any{"Profile": p.Name}), Action{ActConnect, p.Path})
		it.Disabled = running[p.Path] || !m.HelperUp
		items = append(items, it)
	}
	if len(m.Profiles) == 0 && m.HelperUp {
		none := fyne.NewMenuItem(lang.L("No profiles imported"), nil)
		none.Disabled = true
		items = append(items, none)
	}
	if len(m.Sessions) > 0 {
		items = append(items, fyne.NewMenuItemSeparator())
	}
	for _, s := range m.Sessions {
		items = append(items, sessionItem(s, item))
	}
	items = append(items, fyne.NewMenuItemSeparator(),
		item(lang.L("Import profile…"), Action{Kind: ActImport}),
		item(lang.L("Settings…"), Action{Kind: ActSettings}))
	quit := item(lang.L("Quit"), Action{Kind: ActQuit})
	quit.IsQuit = true
	items = append(items, quit)
	return fyne.NewMenu("ovpn3go", items...)
}

// sessionItem is the submenu of one session: its title says profile and
// state; its items depend on the state.
func sessionItem(s SessionView, item func(string, Action) *fyne.MenuItem) *fyne.MenuItem {
	st := s.State()
	var sub []*fyne.MenuItem
	if st == IconAttention {
		sub = append(sub, item(lang.L("Sign in…"), Action{ActAuthenticate, s.Path}))
	}
	switch {
	case st == IconPaused:
		sub = append(sub, item(lang.L("Resume"), Action{ActResume, s.Path}))
	default:
		p := item(lang.L("Pause"), Action{ActPause, s.Path})
		p.Disabled = s.Status.Minor != api.StatusMinorConnConnected
		sub = append(sub, p)
	}
	r := item(lang.L("Restart"), Action{ActRestart, s.Path})
	r.Disabled = st == IconAttention || st == IconError || st == IconDisconnected
	sub = append(sub, r,
		item(lang.L("Disconnect"), Action{ActDisconnect, s.Path}),
		fyne.NewMenuItemSeparator(),
		item(lang.L("Statistics…"), Action{ActStatistics, s.Path}),
		item(lang.L("Log…"), Action{ActLog, s.Path}))
	title := fyne.NewMenuItem(lang.L("{{.Profile}}: {{.State}}", map[string]any{"Profile": s.ConfigName, "State": StatusText(s.Status)}), nil)
	title.ChildMenu = fyne.NewMenu("", sub...)
	return title
}
