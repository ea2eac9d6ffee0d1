package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// busConfig is a system-like bus policy modelled on openvpn3-linux: root may
// own net.openvpn.v3.* and call anything, everyone may call net.openvpn.v3.*,
// polkitd may own its name and call authentication agents (what polkit's
// own bus configuration grants), nobody else owns anything.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
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
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <allow send_destination_prefix="net.openvpn.v3"/>
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy user="root">
    <allow own_prefix="net.openvpn.v3"/>
    <allow send_type="method_call"/>
  </policy>
  <policy user="polkitd">
    <allow own="org.freedesktop.PolicyKit1"/>
    <allow send_interface="org.freedesktop.PolicyKit1.AuthenticationAgent"/>
  </policy>
  <limit name="max_replies_per_connection">128</limit>
</busconfig>
`

// BusDaemon is a private dbus-daemon with a system-like policy.
type BusDaemon struct {
	Address string // unix:path=…,guid=…; set DBUS_SYSTEM_BUS_ADDRESS to this
	Dir     string // bus.conf, the socket, the daemon's log
	*Process
}

// StartBus writes bus.conf into dir and starts dbus-daemon --nofork as a
// child process. The socket lives in dir, so it is reachable from every
// network namespace (unix path sockets belong to the file system).
func StartBus(ctx context.Context, dir string) (*BusDaemon, error) {
	conf := filepath.Join(dir, "bus.conf")
	socket := filepath.Join(dir, "system_bus_socket")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, socket)), 0o644); err != nil {
		return nil, fmt.Errorf("bus config: %w", err)
	}
	// dbus-daemon prints the address (fd 3) and its pid (fd 4) once it
	// listens, closing each pipe after writing.
	addrR, addrW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("bus pipe: %w", err)
	}
	defer addrR.Close()
	pidR, pidW, err := os.Pipe()
	if err != nil {
		addrW.Close()
		return nil, fmt.Errorf("bus pipe: %w", err)
	}
	defer pidR.Close()
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=3", "--print-pid=4")
	cmd.ExtraFiles = []*os.File{addrW, pidW}
	proc, err := StartProcess("dbus-daemon", filepath.Join(dir, "dbus-daemon.log"), cmd)
	addrW.Close() // the child holds its own copies
	pidW.Close()
	if err != nil {
		return nil, err
	}
	b := &BusDaemon{Dir: dir, Process: proc}

	type result struct {
		addr string
		pid  int
		err  error
	}
	resc := make(chan result, 1)
	go func() { // ends when the daemon has written or closed both pipes
		var r result
		addr, _ := bufio.NewReader(addrR).ReadString('\n')
		pid, _ := bufio.NewReader(pidR).ReadString('\n')
		r.addr = strings.TrimSpace(addr)
		if r.addr == "" {
			r.err = fmt.Errorf("no address printed")
		} else {
			r.pid, r.err = strconv.Atoi(strings.TrimSpace(pid))
		}
		resc <- r
	}()
	select {
	case r := <-resc:
		if r.err != nil {
			b.Stop(2 * time.Second)
			return nil, fmt.Errorf("dbus-daemon: %w; log:\n%s", r.err, b.LogTail(20))
		}
		if r.pid != b.PID() {
			b.Stop(2 * time.Second)
			return nil, fmt.Errorf("dbus-daemon printed pid %d, started %d (did it fork?)", r.pid, b.PID())
		}
		b.Address = r.addr
		return b, nil
	case <-ctx.Done():
		b.Stop(2 * time.Second) // closes the pipes, which ends the reader
		return nil, fmt.Errorf("dbus-daemon did not print its address: %w; log:\n%s", ctx.Err(), b.LogTail(20))
	}
}

// Bus is StartBus for tests: it returns the bus address and stops the
// daemon (by PID) in t.Cleanup.
func Bus(t testing.TB) string {
	t.Helper()
	return BusDaemonFor(t).Address
}

// BusDaemonFor is Bus returning the whole BusDaemon (PID, log, socket dir).
func BusDaemonFor(t testing.TB) *BusDaemon {
	t.Helper()
	testenv.RequireCommand(t, "dbus-daemon")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := StartBus(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("Bus: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Stop(5 * time.Second); err != nil {
			t.Errorf("Bus cleanup: %v", err)
		}
	})
	return b
}
