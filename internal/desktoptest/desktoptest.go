// Package desktoptest is the desktop half of the test harness: a private
// session bus, a real Secret Service (gnome-keyring) on it, a fake
// StatusNotifierWatcher that records the items registering with it, a
// notification server that records every Notify call, and an Xvfb display.
// The tray's tests and `make screenshots` use it; everything it starts is
// owned by the caller and stopped by PID.
package desktoptest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// sessionConfig is a session-bus policy with no activatable services, so
// nothing on the host (a real gnome-keyring, a desktop's notification
// daemon) is started behind the test's back.
const sessionConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
%s</busconfig>
`

// SessionBus is a private session bus.
type SessionBus struct {
	Address string
	*testbed.Process
}

// StartSessionBus starts dbus-daemon with the policy above; its socket and
// log live in dir.
func StartSessionBus(ctx context.Context, dir string) (*SessionBus, error) {
	return StartSessionBusWith(ctx, dir, nil, nil)
}

// ConnectSessionBus is StartSessionBus for tests: the bus (its socket and
// log in dir) and a connection to it, both closed in t.Cleanup.
func ConnectSessionBus(t testing.TB, dir string) (*SessionBus, *dbus.Conn) {
	t.Helper()
	testenv.RequireCommand(t, "dbus-daemon")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := StartSessionBus(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(2 * time.Second) })
	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return bus, conn
}

// StartSessionBusWith is StartSessionBus with services the bus may start
// (service files, copied into dir/services) and the environment the bus —
// and so every service it starts — runs with.
func StartSessionBusWith(ctx context.Context, dir string, serviceFiles []string, env []string) (*SessionBus, error) {
	sock := filepath.Join(dir, "session.sock")
	conf := filepath.Join(dir, "session.conf")
	svc := ""
	if len(serviceFiles) > 0 {
		sdir := filepath.Join(dir, "services")
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return nil, err
		}
		for _, f := range serviceFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(sdir, filepath.Base(f)), b, 0o644); err != nil {
				return nil, err
			}
		}
		svc = "  <servicedir>" + sdir + "</servicedir>\n"
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(sessionConfig, sock, svc)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("dbus-daemon", "--nofork", "--config-file="+conf)
	if env != nil {
		cmd.Env = env
	}
	p, err := testbed.StartProcess("session dbus-daemon", filepath.Join(dir, "session-bus.log"), cmd)
	if err != nil {
		return nil, err
	}
	b := &SessionBus{Address: "unix:path=" + sock, Process: p}
	c, err := testbed.DialBus(ctx, b.Address, p)
	if err != nil {
		_ = p.Stop(time.Second)
		return nil, err
	}
	c.Close()
	return b, nil
}

// Keyring is a gnome-keyring-daemon serving org.freedesktop.secrets on a
// session bus, with a fresh unlocked login keyring in its own HOME.
type Keyring struct {
	Home string
	*testbed.Process
}

// StartKeyring starts gnome-keyring-daemon --foreground --unlock (password
// on stdin) with HOME and XDG_RUNTIME_DIR under dir, and waits until it owns
// org.freedesktop.secrets.
func StartKeyring(ctx context.Context, dir, busAddress string) (*Keyring, error) {
	home := filepath.Join(dir, "keyring-home")
	run := filepath.Join(dir, "keyring-run")
	for _, d := range []string{home, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	cmd.Env = append(CleanEnv(), "HOME="+home, "XDG_RUNTIME_DIR="+run, "XDG_DATA_HOME="+filepath.Join(home, ".local/share"),
		"DBUS_SESSION_BUS_ADDRESS="+busAddress)
	cmd.Stdin = strings.NewReader("test-keyring-password")
	p, err := testbed.StartProcess("gnome-keyring-daemon", filepath.Join(dir, "keyring.log"), cmd)
	if err != nil {
		return nil, err
	}
	k := &Keyring{Home: home, Process: p}
	if err := WaitForName(ctx, busAddress, "org.freedesktop.secrets", p, 20*time.Second); err != nil {
		_ = p.Stop(2 * time.Second)
		return nil, err
	}
	return k, nil
}

// CleanEnv is the environment without the host's desktop session variables
// (bus address, display, HOME, XDG dirs): callers add their own.
func CleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME":
			continue
		}
		env = append(env, e)
	}
	return env
}

// WaitForName waits until name has an owner on the bus at address; p (may
// be nil) is the process expected to own it, whose exit ends the wait.
func WaitForName(ctx context.Context, address, name string, p *testbed.Process, timeout time.Duration) error {
	conn, err := dbus.Connect(address)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return testbed.WaitForOwner(ctx, conn, name, p)
}

// BuildTray builds ovpn3-tray (cgo: Fyne's GL driver) into dir and returns
// its path.
func BuildTray(ctx context.Context, dir string) (string, error) {
	root, err := testbed.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ovpn3-tray")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./app/cmd/ovpn3-tray")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ovpn3-tray: %v\n%s", err, out)
	}
	return bin, nil
}

// Xvfb is a virtual X display.
type Xvfb struct {
	Display string // ":N"
	*testbed.Process
}

// StartXvfb starts Xvfb on a free display number (it picks one and writes it
// to a pipe: -displayfd) with a 1024×768 screen.
func StartXvfb(ctx context.Context, dir string) (*Xvfb, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1024x768x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	p, err := testbed.StartProcess("Xvfb", filepath.Join(dir, "xvfb.log"), cmd)
	w.Close()
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case n := <-line:
		if n == "" {
			_ = p.Stop(time.Second)
			return nil, fmt.Errorf("Xvfb gave no display number: %s", p.LogTail(10))
		}
		return &Xvfb{Display: ":" + n, Process: p}, nil
	case <-ctx.Done():
		_ = p.Stop(time.Second)
		return nil, fmt.Errorf("Xvfb did not start: %w", ctx.Err())
	}
}

// WindowID finds a top-level window on display whose title starts with
// prefix (xwininfo -root -tree) and returns its id ("0x…").
func WindowID(display, prefix string) (string, bool) {
	out, err := exec.Command("xwininfo", "-display", display, "-root", "-tree").Output()
	if err != nil {
		return "", false
	}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		id, rest, ok := strings.Cut(l, " ")
		if !ok || !strings.HasPrefix(id, "0x") {
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, `"`+prefix) {
			return id, true
		}
	}
	return "", false
}

// Screenshot writes the window (or "root") of display as a PNG with
// ImageMagick's import; crop ("WxH+X+Y") is optional.
func Screenshot(display, window, crop, out string) error {
	args := []string{"-display", display, "-window", window}
	if crop != "" {
		args = append(args, "-crop", crop, "+repage")
	}
	args = append(args, out)
	if b, err := exec.Command("import", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("import %s: %v: %s", window, err, b)
	}
	return nil
}
