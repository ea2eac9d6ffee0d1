package tray

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/test"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

func TestLogViewFilterAndCopy(t *testing.T) {
	test.NewTempApp(t)
	var copied string
	v := NewLogView(func(s string) { copied = s })
	test.NewTempWindow(t, v.Content)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local)
	v.Add(LogLine{at, api.LogCategoryDebug, "debug detail"})
	v.Add(LogLine{at, api.LogCategoryInfo, "Connecting to 198.18.0.1:1194 over UDP"})
	v.Add(LogLine{at, api.LogCategoryWarn, "server-poll timeout"})
	v.Add(LogLine{at, api.LogCategoryError, "TLS handshake failed"})
	if n := v.List.Length(); n != 3 {
		t.Fatalf("default filter shows %d lines, want 3 (info and above)", n)
	}
	v.Filter.SetSelected("Errors only")
	test.Tap(v.CopyBtn)
	if copied != "03:04:05  ERROR  TLS handshake failed\n" {
		t.Fatalf("copied %q", copied)
	}
	v.Filter.SetSelected("Everything")
	if v.List.Length() != 4 || !strings.Contains(v.Text(), "DEBUG  debug detail") {
		t.Fatalf("everything: %q", v.Text())
	}
	v.Filter.SetSelected("Warnings and errors")
	v.Add(LogLine{at, api.LogCategoryInfo, "later info"})
	v.Add(LogLine{at, api.LogCategoryCrit, "critical"})
	if v.List.Length() != 3 {
		t.Fatalf("live lines not filtered: %q", v.Text())
	}
}

func TestAutostartFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "autostart")
	if Autostart(dir) {
		t.Fatal("autostart before enabling")
	}
	if err := SetAutostart(dir, "/opt/ovpn 3go/bin/ovpn3-tray", true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, AutostartFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Desktop Entry]\n", "Type=Application\n", `Exec="/opt/ovpn 3go/bin/ovpn3-tray"` + "\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("entry lacks %q:\n%s", want, b)
		}
	}
	if !Autostart(dir) {
		t.Fatal("Autostart false after enabling")
	}
	if err := SetAutostart(dir, "/usr/bin/ovpn3-tray", false); err != nil || Autostart(dir) {
		t.Fatalf("disable: %v", err)
	}
	if err := SetAutostart(dir, "/usr/bin/ovpn3-tray", false); err != nil {
		t.Fatalf("disabling twice: %v", err)
	}
}

func newTestTray(t *testing.T, b *fakeBackend, o Options) *Tray {
	t.Helper()
	a := test.NewTempApp(t)
	o.Backend = b
	if o.AutostartDir == "" {
		o.AutostartDir = filepath.Join(t.TempDir(), "autostart")
	}
	o.Executable = "/usr/bin/ovpn3-tray"
	return New(a, o)
}

// TestSettingsView: the switches change the autostart file, the
// notification preference, the auto-connect profile and the profile's DCO.
func TestSettingsView(t *testing.T) {
	b := newFake()
	tr := newTestTray(t, b, Options{})
	v := tr.NewSettingsView([]Profile{{Path: profA, Name: "alpha"}, {Path: profB, Name: "beta", DCO: true}})
	test.NewTempWindow(t, v.Content)
	test.Tap(v.Autostart)
	if !Autostart(tr.opt.AutostartDir) {
		t.Error("Start at login did not write the autostart entry")
	}
	test.Tap(v.Notifications)
	if tr.app.Preferences().BoolWithFallback(prefNotifications, true) {
		t.Error("notifications still on")
	}
	v.AutoConnect.SetSelected("beta")
	if got := tr.app.Preferences().String(prefAutoConnect); got != "beta" {
		t.Errorf("auto-connect %q", got)
	}
	if !v.DCO["beta"].Checked || v.DCO["alpha"].Checked {
		t.Error("DCO checks do not show the profiles' setting")
	}
	test.Tap(v.DCO["alpha"])
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.dco[profA] })
	v.AutoConnect.SetSelected("(none)")
	if got := tr.app.Preferences().String(prefAutoConnect); got != "" {
		t.Errorf("auto-connect after (none): %q", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestImport: the file's name becomes the profile name, the helper's
// refusal is shown verbatim, and drag-and-drop imports too.
func TestImport(t *testing.T) {
	b := newFake()
	tr := newTestTray(t, b, Options{})
	dir := t.TempDir()
	good := filepath.Join(dir, "office.ovpn")
	os.WriteFile(good, []byte("client\nremote 198.18.0.1\n"), 0o600)
	if name, err := ImportFile(context.Background(), b, good); err != nil || name != "office" || b.imported["office"] == "" {
		t.Fatalf("import: %q %v", name, err)
	}
	if _, err := ImportFile(context.Background(), b, dir); err == nil {
		t.Fatal("a directory was imported")
	}
	if ProfileName("/x/home.conf") != "home" || ProfileName("a.ovpn.txt") != "a" {
		t.Error("ProfileName")
	}
	refusal := "Line 7: option 'bogus' is not supported"
	b.importErr = errors.New(refusal)
	w := test.NewTempWindow(t, nil)
	v := tr.NewImportView(w)
	w.SetContent(v.Content)
	tr.importPaths(v, []string{good})
	result := func() (s string) { ui(func() { s = v.Result.Text }); return s }
	waitFor(t, func() bool { return strings.Contains(result(), refusal) })
	if !strings.Contains(result(), "office.ovpn") {
		t.Errorf("result %q does not name the file", result())
	}
	b.importErr = nil
	os.WriteFile(filepath.Join(dir, "lab.ovpn"), []byte("client\n"), 0o600)
	tr.importPaths(v, []string{filepath.Join(dir, "lab.ovpn")})
	waitFor(t, func() bool { return strings.Contains(result(), "Imported lab") })
}

// TestGermanCatalogue renders the menu with LANGUAGE=de.
func TestGermanCatalogue(t *testing.T) {
	t.Setenv("LANGUAGE", "de")
	if err := LoadTranslations(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Setenv("LANGUAGE", "en")
		LoadTranslations()
	})
	got := strings.Join(labels(BuildMenu(modelWith(api.StatusMinorConnConnected, false), func(Action) {}), ""), "|")
	for _, want := range []string{"beta verbinden", "alpha: Verbunden", "Pausieren", "Trennen", "Statistik …", "Profil importieren …", "Einstellungen …", "Beenden"} {
		if !strings.Contains(got, want) {
			t.Errorf("German menu lacks %q: %s", want, got)
		}
	}
	if lang.L("Remember in the keyring") != "Im Schlüsselbund merken" {
		t.Error("German catalogue not active")
	}
}
