package tray

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"
)

// Preference keys (fyne.Preferences).
const (
	prefNotifications = "notifications"
	prefAutoConnect   = "autoconnect"
)

// AutostartFile is the XDG autostart entry's file name.
const AutostartFile = "net.ovpn3go.tray.desktop"

// AutostartDir is $XDG_CONFIG_HOME/autostart (default ~/.config/autostart).
func AutostartDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("autostart: %w", err)
	}
	return filepath.Join(dir, "autostart"), nil
}

// SetAutostart writes (on) or removes (off) the XDG autostart entry that
// starts exe at login.
func SetAutostart(dir, exe string, on bool) error {
	path := filepath.Join(dir, AutostartFile)
	if !on {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("autostart: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	entry := strings.Join([]string{
		"[Desktop Entry]",
		"Type=Application",
		"Name=ovpn3go",
		"Comment=VPN status and control",
		"Exec=" + quoteExec(exe),
		"Icon=net.ovpn3go.tray",
		"Terminal=false",
		"X-GNOME-Autostart-enabled=true",
		"",
	}, "\n")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(entry), 0o644); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

// Autostart reports whether the entry exists.
func Autostart(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, AutostartFile))
	return err == nil
}

// quoteExec quotes a path for an Exec= line when it needs it (desktop entry
// specification: double quotes, with \ " ` $ escaped).
func quoteExec(s string) string {
	if !strings.ContainsAny(s, " \t\n\"'\\><~|&;$*?#()`") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}

// SettingsView is the settings window's content.
type SettingsView struct {
	Content       fyne.CanvasObject
	Autostart     *widget.Check
	Notifications *widget.Check
	AutoConnect   *widget.Select
	DCO           map[string]*widget.Check // by profile name
}

// NewSettingsView builds the settings form for the profiles; changes take
// effect at once (preferences, autostart file, the profile's dco).
func (t *Tray) NewSettingsView(profiles []Profile) *SettingsView {
	v := &SettingsView{DCO: map[string]*widget.Check{}}
	prefs := t.app.Preferences()
	v.Autostart = widget.NewCheck(lang.L("Start at login"), func(on bool) {
		if err := SetAutostart(t.opt.AutostartDir, t.opt.Executable, on); err != nil {
			go t.showError(lang.L("Settings"), err.Error()) // not from inside a UI callback
		}
	})
	v.Autostart.Checked = Autostart(t.opt.AutostartDir)
	v.Notifications = widget.NewCheck(lang.L("Show notifications"), func(on bool) { prefs.SetBool(prefNotifications, on) })
	v.Notifications.Checked = prefs.BoolWithFallback(prefNotifications, true)
	none := lang.L("(none)")
	opts := []string{none}
	for _, p := range profiles {
		opts = append(opts, p.Name)
	}
	v.AutoConnect = widget.NewSelect(opts, func(s string) {
		if s == none {
			s = ""
		}
		prefs.SetString(prefAutoConnect, s)
	})
	if cur := prefs.String(prefAutoConnect); cur != "" {
		v.AutoConnect.Selected = cur
	} else {
		v.AutoConnect.Selected = none
	}
	form := widget.NewForm(widget.NewFormItem(lang.L("Connect at start"), v.AutoConnect))
	box := container.NewVBox(v.Autostart, v.Notifications, form)
	if len(profiles) > 0 {
		box.Add(widget.NewLabelWithStyle(lang.L("Data channel offload (DCO) per profile"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	}
	for _, p := range profiles {
		p := p
		c := widget.NewCheck(p.Name, nil)
		c.Checked = p.DCO
		c.OnChanged = func(on bool) {
			t.goBg(func() {
				if err := t.opt.Backend.SetDCO(t.context(), p.Path, on); err != nil {
					t.showError(lang.L("Settings"), err.Error())
				}
			})
		}
		v.DCO[p.Name] = c
		box.Add(c)
	}
	v.Content = box
	return v
}
