package tray

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// labels renders a menu as lines: "label", "-" for separators, "(label)"
// for insensitive items, and submenus indented.
func labels(m *fyne.Menu, indent string) []string {
	var out []string
	for _, it := range m.Items {
		switch {
		case it.IsSeparator:
			out = append(out, indent+"-")
		case it.Disabled:
			out = append(out, indent+"("+it.Label+")")
		default:
			out = append(out, indent+it.Label)
		}
		if it.ChildMenu != nil {
			out = append(out, labels(it.ChildMenu, indent+"  ")...)
		}
	}
	return out
}

const (
	profA = dbus.ObjectPath("/net/openvpn/v3/configuration/a")
	profB = dbus.ObjectPath("/net/openvpn/v3/configuration/b")
	sessA = dbus.ObjectPath("/net/openvpn/v3/sessions/a")
)

func modelWith(minor api.StatusMinor, attention bool) Model {
	return Model{HelperUp: true,
		Profiles: []Profile{{Path: profB, Name: "beta"}, {Path: profA, Name: "alpha"}},
		Sessions: []SessionView{{Session: Session{Path: sessA, ConfigPath: profA, ConfigName: "alpha",
			Status: api.Status{Major: api.StatusMajorConnection, Minor: minor}}, Attention: attention}}}
}

// TestMenuEverySessionState pins the menu and the icon for each state a
// session can be in.
func TestMenuEverySessionState(t *testing.T) {
	head := []string{"(Connect alpha)", "Connect beta", "-"}
	tail := []string{"  Disconnect", "  -", "  Statistics…", "  Log…", "-", "Import profile…", "Settings…", "Quit"}
	cases := []struct {
		name  string
		minor api.StatusMinor
		att   bool
		icon  IconState
		sub   []string // the session's title and first submenu items
	}{
		{"unset", api.StatusMinorUnset, false, IconConnecting, []string{"alpha: Connecting", "  (Pause)", "  Restart"}},
		{"cfg_ok", api.StatusMinorCfgOK, false, IconConnecting, []string{"alpha: Connecting", "  (Pause)", "  Restart"}},
		{"require_user", api.StatusMinorCfgRequireUser, true, IconAttention, []string{"alpha: Waiting for credentials", "  Sign in…", "  (Pause)", "  (Restart)"}},
		{"auth_url", api.StatusMinorSessAuthURL, true, IconAttention, []string{"alpha: Waiting for web sign-in", "  Sign in…", "  (Pause)", "  (Restart)"}},
		{"connecting", api.StatusMinorConnConnecting, false, IconConnecting, []string{"alpha: Connecting", "  (Pause)", "  Restart"}},
		{"connected", api.StatusMinorConnConnected, false, IconConnected, []string{"alpha: Connected", "  Pause", "  Restart"}},
		{"pausing", api.StatusMinorConnPausing, false, IconPaused, []string{"alpha: Paused", "  Resume", "  Restart"}},
		{"paused", api.StatusMinorConnPaused, false, IconPaused, []string{"alpha: Paused", "  Resume", "  Restart"}},
		{"resuming", api.StatusMinorConnResuming, false, IconConnecting, []string{"alpha: Resuming", "  (Pause)", "  Restart"}},
		{"reconnecting", api.StatusMinorConnReconnecting, false, IconConnecting, []string{"alpha: Reconnecting", "  (Pause)", "  Restart"}},
		{"disconnecting", api.StatusMinorConnDisconnecting, false, IconConnecting, []string{"alpha: Disconnecting", "  (Pause)", "  Restart"}},
		{"disconnected", api.StatusMinorConnDisconnected, false, IconDisconnected, []string{"alpha: Disconnected", "  (Pause)", "  (Restart)"}},
		{"failed", api.StatusMinorConnFailed, false, IconError, []string{"alpha: Connection failed", "  (Pause)", "  (Restart)"}},
		{"auth_failed", api.StatusMinorConnAuthFailed, false, IconError, []string{"alpha: Authentication failed", "  (Pause)", "  (Restart)"}},
		{"cfg_error", api.StatusMinorCfgError, false, IconError, []string{"alpha: Configuration error", "  (Pause)", "  (Restart)"}},
		{"killed", api.StatusMinorProcKilled, false, IconError, []string{"alpha: Stopped unexpectedly", "  (Pause)", "  (Restart)"}},
		{"done", api.StatusMinorConnDone, false, IconDisconnected, []string{"alpha: Disconnected", "  (Pause)", "  (Restart)"}},
		{"connected_attention", api.StatusMinorConnConnected, true, IconAttention, []string{"alpha: Connected", "  Sign in…", "  Pause", "  (Restart)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := modelWith(c.minor, c.att)
			if got := m.Icon(); got != c.icon {
				t.Errorf("icon %s, want %s", got.AssetName(), c.icon.AssetName())
			}
			got := labels(BuildMenu(m, func(Action) {}), "")
			want := append(append(append([]string{}, head...), c.sub...), tail...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("menu:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestMenuNoSessionsHelperAbsentAndActions(t *testing.T) {
	m := Model{HelperUp: true, Profiles: []Profile{{Path: profA, Name: "alpha"}}}
	if m.Icon() != IconDisconnected || m.Tooltip() != "Not connected" {
		t.Errorf("idle: icon %v tooltip %q", m.Icon(), m.Tooltip())
	}
	var got []Action
	menu := BuildMenu(m, func(a Action) { got = append(got, a) })
	if l := strings.Join(labels(menu, ""), "|"); l != "Connect alpha|-|Import profile…|Settings…|Quit" {
		t.Errorf("idle menu %s", l)
	}
	for _, it := range menu.Items {
		if it.Action != nil {
			it.Action()
		}
	}
	want := []Action{{ActConnect, profA}, {Kind: ActImport}, {Kind: ActSettings}, {Kind: ActQuit}}
	if len(got) != len(want) {
		t.Fatalf("actions %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("action %d = %v, want %v", i, got[i], want[i])
		}
	}
	if !menu.Items[len(menu.Items)-1].IsQuit {
		t.Error("Quit is not marked IsQuit (Fyne would add a second one)")
	}

	// each session item acts on its session
	got = nil
	menu = BuildMenu(modelWith(api.StatusMinorConnConnected, false), func(a Action) { got = append(got, a) })
	for _, it := range menu.Items {
		if it.ChildMenu != nil {
			for _, c := range it.ChildMenu.Items {
				if c.Action != nil {
					c.Action()
				}
			}
		}
	}
	kinds := []ActionKind{ActPause, ActRestart, ActDisconnect, ActStatistics, ActLog}
	if len(got) != len(kinds) {
		t.Fatalf("session actions %v", got)
	}
	for i, k := range kinds {
		if got[i] != (Action{k, sessA}) {
			t.Errorf("session action %d = %v, want %v", i, got[i], Action{k, sessA})
		}
	}

	absent := Model{}
	if absent.Icon() != IconError || absent.Tooltip() != "The VPN service is not running" {
		t.Errorf("absent: %v %q", absent.Icon(), absent.Tooltip())
	}
	if l := strings.Join(labels(BuildMenu(absent, func(Action) {}), ""), "|"); l != "(The VPN service is not running)|-|Import profile…|Settings…|Quit" {
		t.Errorf("absent menu %s", l)
	}
	// several sessions: the icon shows the most urgent one
	two := modelWith(api.StatusMinorConnConnected, false)
	two.Sessions = append(two.Sessions, SessionView{Session: Session{Path: "/s/b", ConfigPath: profB, ConfigName: "beta",
		Status: api.Status{Minor: api.StatusMinorCfgRequireUser}}})
	if two.Icon() != IconAttention || two.Tooltip() != "2 VPN sessions" {
		t.Errorf("two sessions: %v %q", two.Icon(), two.Tooltip())
	}
}
