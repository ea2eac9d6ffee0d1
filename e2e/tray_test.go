package e2e

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray"
	"github.com/ovpn3go/ovpn3go/app/tray/secrets"
	"github.com/ovpn3go/ovpn3go/assets"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/desktoptest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

var (
	trayOnce sync.Once
	trayBin  string
	trayErr  error
)

// trayBinary builds ovpn3-tray once (cgo: Fyne's GL driver).
func trayBinary(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "go")
	trayOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ovpn3go-e2e-tray-")
		if err != nil {
			trayErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil { // the tray runs as nobody
			trayErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		trayBin, trayErr = desktoptest.BuildTray(ctx, dir)
	})
	if trayErr != nil {
		t.Fatal(trayErr)
	}
	return trayBin
}

// unprivileged is the user the tray runs as in these tests.
func unprivileged(t *testing.T) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	id, _ := strconv.ParseUint(u.Uid, 10, 32)
	g, _ := strconv.ParseUint(u.Gid, 10, 32)
	return uint32(id), uint32(g)
}

// trayDesktop is a desktop session for one ovpn3-tray: Xvfb, a private
// session bus with a StatusNotifierWatcher, a recording notification
// server and gnome-keyring, and the tray process itself.
type trayDesktop struct {
	t       *testing.T
	bus     *desktoptest.SessionBus
	watcher *desktoptest.Watcher
	notes   *desktoptest.NotificationServer
	conn    *dbus.Conn // the test's own session-bus connection
	proc    *testbed.Process
	item    *desktoptest.TrayItem
	env     []string
	uid     uint32 // the tray's user
	gid     uint32
}

func startTrayDesktop(t *testing.T, st *testbed.Stack, args ...string) *trayDesktop {
	t.Helper()
	for _, c := range []string{"Xvfb", "gnome-keyring-daemon", "dbus-daemon"} {
		testenv.RequireCommand(t, c)
	}
	bin := trayBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	d := &trayDesktop{t: t}
	x, err := desktoptest.StartXvfb(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = x.Stop(2 * time.Second) })
	if d.bus, err = desktoptest.StartSessionBus(ctx, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.bus.Stop(2 * time.Second) })
	kr, err := desktoptest.StartKeyring(ctx, dir, d.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kr.Stop(2 * time.Second) })
	if d.watcher, err = desktoptest.StartWatcher(d.bus.Address); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.watcher.Close() })
	if d.notes, err = desktoptest.StartNotificationServer(d.bus.Address); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.notes.Close() })
	if d.conn, err = dbus.Connect(d.bus.Address); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.conn.Close() })

	// The tray runs as an unprivileged user (nobody): nothing in it needs
	// root. It must reach the session bus's socket and read the profile
	// (the stack's system bus socket is in a public directory already).
	uid, gid := unprivileged(t)
	d.uid, d.gid = uid, gid
	for _, p := range []string{filepath.Dir(dir), dir, filepath.Dir(st.Dir), st.Dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	d.env = append(desktoptest.CleanEnv(), "DISPLAY="+x.Display, "DBUS_SESSION_BUS_ADDRESS="+d.bus.Address,
		"DBUS_SYSTEM_BUS_ADDRESS="+st.Bus.Address, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"LANG=en_US.UTF-8", "LANGUAGE=en", tray.ControlEnv+"=1")
	cmd := exec.Command(bin, args...)
	cmd.Env = d.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if d.proc, err = testbed.StartProcess("ovpn3-tray", filepath.Join(dir, "tray.log"), cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ovpn3-tray log:\n%s", d.proc.LogTail(40))
		}
		_ = d.proc.Stop(5 * time.Second)
	})
	var it desktoptest.Item
	select {
	case it = <-d.watcher.Registered():
	case <-d.proc.Done():
		t.Fatalf("ovpn3-tray exited: %s", d.proc.LogTail(20))
	case <-ctx.Done():
		t.Fatalf("no StatusNotifierItem registered: %s", d.proc.LogTail(20))
	}
	if d.item, err = desktoptest.NewTrayItem(d.conn, it); err != nil {
		t.Fatal(err)
	}
	if err := desktoptest.WaitForName(ctx, d.bus.Address, tray.ControlName, d.proc, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return d
}

// layout reads the whole exported menu.
func (d *trayDesktop) layout() desktoptest.MenuEntry {
	l, err := d.item.Layout()
	if err != nil {
		d.t.Fatal(err)
	}
	return l
}

// waitMenu waits until an enabled item starting with prefix exists.
func (d *trayDesktop) waitMenu(prefix string, timeout time.Duration) desktoptest.MenuEntry {
	d.t.Helper()
	it, err := d.item.WaitItem(prefix, timeout)
	if err != nil {
		d.t.Fatal(err)
	}
	return it
}

// click sends the dbusmenu "clicked" event a tray host sends.
func (d *trayDesktop) click(it desktoptest.MenuEntry) {
	d.t.Helper()
	if err := d.item.Click(it); err != nil {
		d.t.Fatal(err)
	}
}

// dialogs lists the open credential dialogs (test control).
func (d *trayDesktop) dialogs() map[dbus.ObjectPath]string {
	m, err := desktoptest.TrayDialogs(d.conn)
	if err != nil {
		d.t.Fatal(err)
	}
	return m
}

// waitDialog waits for one credential dialog: its session and slot names.
func (d *trayDesktop) waitDialog(timeout time.Duration) (dbus.ObjectPath, string) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ds := d.dialogs(); len(ds) == 1 {
			for p, slots := range ds {
				return p, slots
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no credential dialog within %v; log:\n%s", timeout, d.proc.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *trayDesktop) answer(session dbus.ObjectPath, values []string, remember bool) {
	d.t.Helper()
	if err := desktoptest.TrayAnswer(d.conn, session, values, remember); err != nil {
		d.t.Fatal(err)
	}
}

// iconPixels is what fyne.io/systray exports as IconPixmap for a PNG:
// ARGB bytes, row by row.
func iconPixels(t *testing.T, state string) []byte {
	b, err := assets.TrayIcon(state)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	bnd := img.Bounds()
	for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
		for x := bnd.Min.X; x < bnd.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			out = append(out, byte(a), byte(r), byte(g), byte(b))
		}
	}
	_ = image.Point{}
	return out
}

// iconState returns which state's PNG the item shows ("" if none).
func (d *trayDesktop) iconState() string {
	data, err := d.item.IconPixmap()
	if err != nil {
		d.t.Fatal(err)
	}
	for _, s := range assets.States {
		if bytes.Equal(data, iconPixels(d.t, s)) {
			return s
		}
	}
	return ""
}

func (d *trayDesktop) waitIcon(state string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for d.iconState() != state {
		if time.Now().After(deadline) {
			d.t.Fatalf("icon is %q, not %q after %v; menu:\n%s\nlog:\n%s", d.iconState(), state, timeout, d.layout(), d.proc.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connectedNotes counts "Connected" notifications for profile.
func (d *trayDesktop) connectedNotes(profile string) int {
	n := 0
	for _, c := range d.notes.Calls() {
		if c.Summary == profile && c.Body == "Connected" {
			n++
		}
	}
	return n
}

func (d *trayDesktop) keyring(ctx context.Context, attrs map[string]string) (string, bool) {
	d.t.Helper()
	s, err := secrets.Open(ctx, d.conn)
	if err != nil {
		d.t.Fatal(err)
	}
	defer s.Close()
	v, found, err := s.Lookup(ctx, attrs)
	if err != nil {
		d.t.Fatal(err)
	}
	return v, found
}

// trayDevices counts the tunnel devices in the stack's client namespace:
// the sessions belong to the tray's user, whom the test's root connection
// cannot see (session visibility is by owner, root is not special).
func trayDevices(t *testing.T, st *testbed.Stack) int {
	out, err := testbed.Command(context.Background(), st.Pair.ClientNS, "ip", "-o", "link", "show", "type", "tun").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(out), "\n")
}

// waitNoSession waits until the session's tunnel is gone.
func waitNoSession(t *testing.T, st *testbed.Stack, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for trayDevices(t, st) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tunnel still there after %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startTrayImporting starts a stack of variant v and the tray on its
// desktop with `--import` of the stack's profile; name is the profile's name
// in the tray.
func startTrayImporting(t *testing.T, v testbed.Variant) (st *testbed.Stack, d *trayDesktop, profile, name string) {
	t.Helper()
	st = testbed.NewStack(t, binaries(t), v)
	profile, err := st.WriteProfile(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(profile, 0o644); err != nil { // the tray's user reads it
		t.Fatal(err)
	}
	return st, startTrayDesktop(t, st, "--import", profile), profile, tray.ProfileName(profile)
}

// TestTrayUserPassword runs the real ovpn3-tray under Xvfb against the real
// helper and the OpenVPN 2.6 server with username/password (variant f):
// --import, Connect through the exported dbusmenu, the credential dialog
// answered with Remember, the icon reaching connected, exactly one
// "connected" notification, Disconnect, and Connect again without a dialog
// from the keyring; then the helper stops (the tray says so) and comes back
// (the tray recovers).
func TestTrayUserPassword(t *testing.T) {
	st, d, profile, name := startTrayImporting(t, testbed.VariantF)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	d.click(d.waitMenu("Connect "+name, 60*time.Second))
	session, slots := d.waitDialog(60 * time.Second)
	if slots != "username,password" {
		t.Fatalf("dialog asks for %q, want username,password", slots)
	}
	d.answer(session, []string{testbed.TestUser, testbed.TestPass}, true)
	d.waitIcon("connected", 90*time.Second)
	if v, ok := d.keyring(ctx, map[string]string{"application": "ovpn3go", "slot": "password"}); !ok || v != testbed.TestPass {
		t.Fatalf("password in the keyring: %q %v", v, ok)
	}
	if _, ok := d.waitMenu(name+": Connected", 10*time.Second).Find("Disconnect"); !ok {
		t.Fatalf("no Disconnect under the session: %s", d.layout())
	}
	// a connected tunnel that stays up notifies once
	time.Sleep(2 * time.Second)
	if n := d.connectedNotes(name); n != 1 {
		t.Fatalf("%d 'Connected' notifications, want exactly 1: %+v", n, d.notes.Calls())
	}

	sess, _ := d.waitMenu(name+": Connected", 10*time.Second).Find("Disconnect")
	d.click(sess)
	waitNoSession(t, st, 30*time.Second)
	d.waitIcon("disconnected", 30*time.Second)

	// again: the keyring answers, no dialog
	d.click(d.waitMenu("Connect "+name, 30*time.Second))
	for started := time.Now(); !hasItem(d, name+":"); {
		if time.Since(started) > 30*time.Second {
			t.Fatalf("the second Connect started no session; menu:\n%s\nlog:\n%s", d.layout(), d.proc.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(90 * time.Second)
	for d.iconState() != "connected" {
		if ds := d.dialogs(); len(ds) != 0 {
			t.Fatalf("dialog shown although the credentials are remembered: %v", ds)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not connected again; icon %q; log:\n%s", d.iconState(), d.proc.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := d.connectedNotes(name); n != 2 {
		t.Fatalf("%d 'Connected' notifications after the second connect, want 2", n)
	}
	sess, _ = d.waitMenu(name+": Connected", 10*time.Second).Find("Disconnect")
	d.click(sess)
	waitNoSession(t, st, 30*time.Second)

	// the helper goes away: the tray says so (menu, error icon) and keeps
	// running; when the helper is back it recovers with the stored profile
	if err := st.Helper.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitMenuLabel(t, d, "The VPN service is not running", 30*time.Second)
	d.waitIcon("error", 10*time.Second)
	restartHelper(t, st, 2)
	d.waitMenu("Connect "+name, 30*time.Second)
	d.waitIcon("disconnected", 10*time.Second)

	// a second `ovpn3-tray --import FILE` (a file manager opening a .ovpn)
	// hands the file to the running tray and exits; the helper's refusal of
	// a broken profile reaches the person verbatim
	text := "client\ndev tun\n</ca>\nremote 198.18.0.1 1194\n"
	broken := filepath.Join(filepath.Dir(profile), "broken.ovpn")
	if err := os.WriteFile(broken, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	refErr := st.Conn.Object(api.ServiceConfiguration, api.PathConfiguration).
		CallWithContext(ctx, api.InterfaceConfiguration+".Import", 0, "broken", text, false, false).Err
	if refErr == nil {
		t.Fatal("the helper accepted the broken profile")
	}
	want := api.ErrorText(refErr)
	second := exec.CommandContext(ctx, trayBinary(t), "--import", broken)
	second.Env = d.env
	second.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: d.uid, Gid: d.gid}}
	if out, err := second.CombinedOutput(); err != nil || !strings.Contains(string(out), "handed the profile to the running ovpn3-tray") {
		t.Fatalf("second ovpn3-tray --import: %v\n%s", err, out)
	}
	if err := d.proc.WaitForLog(ctx, "import refused", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if log := d.proc.Log(); !strings.Contains(log, want) && !strings.Contains(log, strconv.Quote(want)) {
		t.Fatalf("the tray does not show the helper's refusal %q verbatim:\n%s", want, d.proc.LogTail(5))
	}
	if n := strings.Count(d.layout().String(), "Connect "); n != 1 {
		t.Fatalf("%d profiles in the menu after the refused import, want 1:\n%s", n, d.layout())
	}
}

func hasItem(d *trayDesktop, prefix string) bool {
	_, ok := d.layout().Find(prefix)
	return ok
}

// waitMenuLabel waits for an item (enabled or not) starting with prefix.
func waitMenuLabel(t *testing.T, d *trayDesktop, prefix string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !hasItem(d, prefix) {
		if time.Now().After(deadline) {
			t.Fatalf("no menu item %q after %v; menu:\n%s", prefix, timeout, d.layout())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTrayStaticChallenge: with a static-challenge profile (variant g) the
// dialog asks for the OTP on every connect; Remember keeps username and
// password (filled in the second time) but never the OTP.
func TestTrayStaticChallenge(t *testing.T) {
	st, d, _, name := startTrayImporting(t, testbed.VariantG)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for round := 0; round < 2; round++ {
		d.click(d.waitMenu("Connect "+name, 60*time.Second))
		session, slots := d.waitDialog(60 * time.Second)
		if slots != "username,password,static_challenge" {
			t.Fatalf("round %d: dialog asks for %q", round, slots)
		}
		answers := []string{testbed.TestUser, testbed.TestPass, testbed.TestOTP}
		if round == 1 {
			answers = []string{"", "", testbed.TestOTP} // username and password come from the keyring
		}
		d.answer(session, answers, true)
		d.waitIcon("connected", 90*time.Second)
		if _, ok := d.keyring(ctx, map[string]string{"application": "ovpn3go", "slot": "static_challenge"}); ok {
			t.Fatal("the OTP was stored in the keyring")
		}
		if v, ok := d.keyring(ctx, map[string]string{"application": "ovpn3go", "slot": "password"}); !ok || v != testbed.TestPass {
			t.Fatalf("password in the keyring: %q %v", v, ok)
		}
		it, _ := d.waitMenu(name+": Connected", 10*time.Second).Find("Disconnect")
		d.click(it)
		waitNoSession(t, st, 30*time.Second)
	}
}
