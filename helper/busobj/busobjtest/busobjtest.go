// Package busobjtest starts a private, system-like dbus-daemon for tests of
// D-Bus services (until internal/testbed offers the same). The policy is
// modelled on openvpn3-linux: root may own net.openvpn.v3.* names and call
// anything, everyone may call net.openvpn.v3.* services, nobody else may own
// names.
package busobjtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const policy = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <allow send_destination_prefix="net.openvpn.v3"/>
  </policy>
  <policy user="root">
    <allow own_prefix="net.openvpn.v3"/>
    <allow send_type="method_call"/>
  </policy>
  <limit name="max_replies_per_connection">128</limit>
</busconfig>
`

// StartBus starts a private bus for the test and returns its address. The
// daemon is killed (by PID) and its files removed in t.Cleanup. Callers
// that need to own net.openvpn.v3.* names must run as root.
func StartBus(t testing.TB) string {
	t.Helper()
	daemon := testenv.RequireCommand(t, "dbus-daemon")
	// Short directory: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "ovpnbus")
	if err != nil {
		t.Fatalf("bus dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// Other UIDs (setpriv --reuid) must reach the socket.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("bus dir: %v", err)
	}
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(policy, sock)), 0o644); err != nil {
		t.Fatalf("bus config: %v", err)
	}
	cmd := exec.Command(daemon, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	logPath := filepath.Join(dir, "daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("bus log: %v", err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
		if b, _ := os.ReadFile(logPath); t.Failed() && len(b) > 0 {
			t.Logf("dbus-daemon output:\n%s", b)
		}
	})
	addrCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addrCh <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out) // drain until the daemon exits
	}()
	select {
	case addr := <-addrCh:
		if addr == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return addr
	case <-time.After(20 * time.Second): // a hung daemon, not a speed assertion
		t.Fatal("dbus-daemon did not start")
	}
	return ""
}

// AsUser returns a command that runs name with args as the given UID/GID
// (setpriv execs in place, so the process really has that identity) with
// DBUS_SYSTEM_BUS_ADDRESS pointing at address.
func AsUser(t testing.TB, uid int, address, name string, args ...string) *exec.Cmd {
	t.Helper()
	setpriv := testenv.RequireCommand(t, "setpriv")
	all := append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", name}, args...)
	cmd := exec.Command(setpriv, all...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+address)
	return cmd
}
