package testbed

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// busConfig is the system bus of Debian's /usr/share/dbus-1/system.conf
// (its policy, verbatim in meaning) listening on a private socket, with the
// policy files a system running ovpn3go has in system.d: ours
// (packaging/dbus/net.openvpn.v3.conf, the very file the package installs)
// and polkit's. Nothing else differs from the machine's system bus.
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
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <include>%s</include>
  <include>%s</include>
  <limit name="max_replies_per_connection">128</limit>
</busconfig>
`

// PolkitBusPolicy is polkitd's system bus policy (package polkitd).
const PolkitBusPolicy = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf"

// BusPolicyFile is the absolute path of packaging/dbus/net.openvpn.v3.conf
// in this source tree.
func BusPolicyFile() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "packaging/dbus/net.openvpn.v3.conf"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "packaging", "dbus", "net.openvpn.v3.conf")
}

// BusDaemon is a private dbus-daemon with the system bus's policy.
type BusDaemon struct {
	Address string // unix:path=…,guid=…; set DBUS_SYSTEM_BUS_ADDRESS to this
	Dir     string // bus.conf, the socket, the daemon's log
	*Process
}

// StartBus writes bus.conf into dir and starts dbus-daemon --nofork as a
// child process. The socket lives in dir, so it is reachable from every
// network namespace (unix path sockets belong to the file system).
// prepare functions adjust the command before it starts (OwnProcessGroup).
//
// As root it first creates the backend user: the policy grants that user
// the backends' rights, and dbus-daemon drops the rules of a user that
// does not exist when it reads its configuration, for good (a backend
// started later may then not own its name).
func StartBus(ctx context.Context, dir string, prepare ...func(*exec.Cmd)) (*BusDaemon, error) {
	if os.Geteuid() == 0 {
		if _, _, err := testenv.CreateBackendUser(); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "bus.conf")
	socket := filepath.Join(dir, "system_bus_socket")
	for _, f := range []string{BusPolicyFile(), PolkitBusPolicy} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("bus policy: %w", err)
		}
	}
	text := fmt.Sprintf(busConfig, socket, BusPolicyFile(), PolkitBusPolicy)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
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
	for _, f := range prepare {
		f(cmd)
	}
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

// PublicDir makes a short-named directory under the temporary directory
// that every user may enter (mode 0755): a bus socket there is reachable
// by the backends (the backend user) and by tests' clients of other UIDs.
func PublicDir(prefix string) (string, error) {
	// Short: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", fmt.Errorf("bus directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("bus directory: %w", err)
	}
	return dir, nil
}

// BusDaemonFor is Bus returning the whole BusDaemon (PID, log, socket dir).
// The socket's directory is open to every user (PublicDir); it is removed
// in t.Cleanup.
func BusDaemonFor(t testing.TB) *BusDaemon {
	t.Helper()
	testenv.RequireCommand(t, "dbus-daemon")
	dir, err := PublicDir("ovpnbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := StartBus(ctx, dir)
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

// DialBus connects to the bus at address as soon as it accepts
// connections; it gives up when ctx ends or p, the bus daemon, exits.
func DialBus(ctx context.Context, address string, p *Process) (*dbus.Conn, error) {
	for {
		conn, err := dbus.Connect(address)
		if err == nil {
			return conn, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("%s exited: %v\n%s", p.Name, p.ExitErr(), p.LogTail(20))
		case <-ctx.Done():
			return nil, fmt.Errorf("%s did not come up: %w (%v)\n%s", p.Name, ctx.Err(), err, p.LogTail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitForOwner waits until name has an owner on conn's bus; p (may be nil)
// is the process expected to own it, whose exit ends the wait, as does ctx.
func WaitForOwner(ctx context.Context, conn *dbus.Conn, name string, p *Process) error {
	var done <-chan struct{} // nil without p: never ready
	if p != nil {
		done = p.Done()
	}
	for {
		var has bool
		err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
		if err == nil && has {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before owning %s: %v\n%s", p.Name, name, p.ExitErr(), p.LogTail(40))
		case <-ctx.Done():
			tail := ""
			if p != nil {
				tail = "\n" + p.LogTail(40)
			}
			return fmt.Errorf("%s has no owner: %w%s", name, ctx.Err(), tail)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
