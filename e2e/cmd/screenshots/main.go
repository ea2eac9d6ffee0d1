// Command screenshots is `make screenshots`: it runs the whole system — the
// helper with the OpenVPN 2.6 test server (user/password variant f), and
// ovpn3-tray under Xvfb next to a real StatusNotifierItem host
// (xfce4-panel) — drives the tray through its menu as the panel would, and
// writes a PNG of the tray icon in the panel and of every window into -out.
// Run as root (namespaces, TUN device, private buses).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray"
	"github.com/ovpn3go/ovpn3go/internal/desktoptest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

func main() {
	out := flag.String("out", "docs/screenshots", "folder for the PNGs")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "screenshots:", err)
		os.Exit(1)
	}
}

// panelConfig is one 32 px panel at the top holding only the status tray
// plugin (the SNI host), as xfconf XML.
const panelConfig = `<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="size" type="uint" value="32"/>
      <property name="plugin-ids" type="array"><value type="int" value="1"/></property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="systray"/>
  </property>
</channel>
`

type shooter struct {
	display string
	out     string
}

// window waits for a window titled prefix… and captures it.
func (s *shooter) window(prefix, file string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if id, ok := desktoptest.WindowID(s.display, prefix); ok {
			time.Sleep(1500 * time.Millisecond) // let it draw
			fmt.Println("  ", file)
			return desktoptest.Screenshot(s.display, id, "", filepath.Join(s.out, file))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no window %q", prefix)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func run(out string) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("run as root (network namespaces, TUN, private system bus)")
	}
	for _, c := range []string{"Xvfb", "xfce4-panel", "gnome-keyring-daemon", "import", "xwininfo", "openvpn"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not installed (make deps)", c)
		}
	}
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ovpn3go-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	fmt.Println("building…")
	bin, err := testbed.BuildBinaries(ctx, dir)
	if err != nil {
		return err
	}
	trayBin, err := desktoptest.BuildTray(ctx, dir)
	if err != nil {
		return err
	}

	fmt.Println("starting the helper, the OpenVPN server and the desktop…")
	stackDir := filepath.Join(dir, "stack")
	if err := os.MkdirAll(stackDir, 0o700); err != nil {
		return err
	}
	st, err := testbed.StartStack(ctx, testbed.StackOptions{Bin: bin, Dir: stackDir, Variant: testbed.VariantF})
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = st.Close() })
	profile, err := st.WriteProfile(testbed.VariantF)
	if err != nil {
		return err
	}
	name := tray.ProfileName(profile)

	x, err := desktoptest.StartXvfb(ctx, dir)
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = x.Stop(2 * time.Second) })
	// xfce4-panel reads its configuration through xfconfd, which the bus
	// starts: the bus runs with the panel's HOME so xfconfd reads ours.
	panelHome := filepath.Join(dir, "panel-home")
	xmlDir := filepath.Join(panelHome, ".config/xfce4/xfconf/xfce-perchannel-xml")
	if err := os.MkdirAll(xmlDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(xmlDir, "xfce4-panel.xml"), []byte(panelConfig), 0o600); err != nil {
		return err
	}
	panelEnv := append(desktoptest.CleanEnv(), "HOME="+panelHome, "XDG_CONFIG_HOME="+filepath.Join(panelHome, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(panelHome, ".cache"), "DISPLAY="+x.Display, "NO_AT_BRIDGE=1")
	bus, err := desktoptest.StartSessionBusWith(ctx, dir, []string{"/usr/share/dbus-1/services/org.xfce.Xfconf.service"}, panelEnv)
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = bus.Stop(2 * time.Second) })
	kr, err := desktoptest.StartKeyring(ctx, dir, bus.Address)
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = kr.Stop(2 * time.Second) })
	notes, err := desktoptest.StartNotificationServer(bus.Address)
	if err != nil {
		return err
	}
	stops = append(stops, func() { notes.Close() })
	panelCmd := exec.Command("xfce4-panel", "--disable-wm-check")
	panelCmd.Env = append(panelEnv, "DBUS_SESSION_BUS_ADDRESS="+bus.Address)
	panel, err := testbed.StartProcess("xfce4-panel", filepath.Join(dir, "panel.log"), panelCmd)
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = panel.Stop(3 * time.Second) })
	if err := desktoptest.WaitForName(ctx, bus.Address, tray.StatusNotifierWatcher, panel, 30*time.Second); err != nil {
		return err
	}
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		return err
	}
	defer conn.Close()

	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	trayCmd := exec.Command(trayBin, "--import", profile)
	trayCmd.Env = append(desktoptest.CleanEnv(), "DISPLAY="+x.Display, "DBUS_SESSION_BUS_ADDRESS="+bus.Address,
		"DBUS_SYSTEM_BUS_ADDRESS="+st.Bus.Address, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"LANG=en_US.UTF-8", "LANGUAGE=en", tray.ControlEnv+"=1")
	proc, err := testbed.StartProcess("ovpn3-tray", filepath.Join(dir, "tray.log"), trayCmd)
	if err != nil {
		return err
	}
	stops = append(stops, func() { _ = proc.Stop(5 * time.Second) })
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\ntray log:\n%s\npanel log:\n%s", err, proc.LogTail(20), panel.LogTail(10))
		}
	}()
	if err := desktoptest.WaitForName(ctx, bus.Address, tray.ControlName, proc, 60*time.Second); err != nil {
		return err
	}
	item, err := registeredItem(ctx, conn)
	if err != nil {
		return err
	}
	s := &shooter{display: x.Display, out: out}

	fmt.Println("capturing…")
	if err := s.window("Import profile", "import.png"); err != nil {
		return err
	}
	it, err := item.WaitItem("Connect "+name, 30*time.Second)
	if err != nil {
		return err
	}
	if err := item.Click(it); err != nil {
		return err
	}
	var session dbus.ObjectPath
	for session == "" {
		ds, err := desktoptest.TrayDialogs(conn)
		if err != nil {
			return err
		}
		for p := range ds {
			session = p
		}
		if ctx.Err() != nil {
			return errors.New("no credential dialog")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.window("Sign in to "+name, "credentials.png"); err != nil {
		return err
	}
	if err := desktoptest.TrayAnswer(conn, session, []string{testbed.TestUser, testbed.TestPass}, true); err != nil {
		return err
	}
	sessItem, err := item.WaitItem(name+": Connected", 90*time.Second)
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the panel redraws the new icon
	fmt.Println("   tray-panel.png")
	if err := desktoptest.Screenshot(x.Display, "root", "320x32+0+0", filepath.Join(out, "tray-panel.png")); err != nil {
		return err
	}
	// a little traffic for the statistics
	go func() {
		for i := 0; i < 8 && ctx.Err() == nil; i++ {
			_ = testbed.Command(ctx, st.Pair.ClientNS, "ping", "-c", "20", "-i", "0.2", "-s", "1200", "-q", testbed.TunnelServer4).Run()
		}
	}()
	for _, w := range []struct{ item, title, file string }{
		{"Statistics…", "Statistics: " + name, "statistics.png"},
		{"Log…", "Log: " + name, "log.png"},
		{"Settings…", "Settings", "settings.png"},
	} {
		l, err := item.Layout()
		if err != nil {
			return err
		}
		sess, _ := l.Find(sessItem.Label)
		target, ok := sess.Find(w.item)
		if !ok {
			target, ok = l.Find(w.item)
		}
		if !ok {
			return fmt.Errorf("no menu item %q:\n%s", w.item, l)
		}
		if err := item.Click(target); err != nil {
			return err
		}
		if w.file == "statistics.png" {
			time.Sleep(15 * time.Second) // some seconds of graph
		}
		if err := s.window(w.title, w.file); err != nil {
			return err
		}
	}
	// no tray host any more: the tray opens its main window
	fmt.Println("stopping the panel (no tray host)…")
	if err := panel.Stop(5 * time.Second); err != nil {
		return err
	}
	if err := s.window("ovpn3go", "main-window.png"); err != nil {
		return err
	}
	fmt.Println("done:", out)
	return nil
}

// registeredItem waits for the tray's item in the panel's watcher.
func registeredItem(ctx context.Context, conn *dbus.Conn) (*desktoptest.TrayItem, error) {
	for {
		v, err := conn.Object(tray.StatusNotifierWatcher, "/StatusNotifierWatcher").GetProperty(tray.StatusNotifierWatcher + ".RegisteredStatusNotifierItems")
		if err == nil {
			if items, ok := v.Value().([]string); ok && len(items) > 0 {
				i := strings.Index(items[0], "/")
				if i > 0 {
					return desktoptest.NewTrayItem(conn, desktoptest.Item{Bus: items[0][:i], Path: dbus.ObjectPath(items[0][i:])})
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("the tray did not register with the panel")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
