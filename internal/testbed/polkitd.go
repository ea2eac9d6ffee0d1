package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/polkit/polkittest"
)

// PolkitdPath is the polkit daemon of Debian's polkitd package.
const PolkitdPath = "/usr/lib/polkit-1/polkitd"

// PolkitPolicyFile is the absolute path of polkit/net.ovpn3go.policy (the
// helper's actions, as the package installs them) in this source tree.
func PolkitPolicyFile() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "polkit/net.ovpn3go.policy"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "polkit", "net.ovpn3go.policy")
}

// InstallPolkitActions puts the shipped action file where polkitd reads
// it (machine-wide, under polkittest's lock, which the returned func
// releases after restoring what was there): a program whose stacks run
// polkitd (StackOptions.Polkitd) calls it once, before them. The
// actions in allowAny are allowed for any subject (polkittest.AllowAny):
// a user without a seat then gets what the shipped file gives a local
// desktop session.
func InstallPolkitActions(allowAny ...string) (restore func() error, err error) {
	b, err := os.ReadFile(PolkitPolicyFile())
	if err != nil {
		return nil, fmt.Errorf("polkit actions: %w", err)
	}
	text := string(b)
	for _, action := range allowAny {
		if text, err = polkittest.AllowAny(text, action); err != nil {
			return nil, err
		}
	}
	return polkittest.Install(text)
}

// StartPolkitd runs polkitd on the bus at addr, as a system has it (it
// drops to user polkitd, whom its bus policy lets own
// org.freedesktop.PolicyKit1), and returns once it owns that name.
func StartPolkitd(ctx context.Context, addr, logPath string) (*Process, error) {
	if _, err := os.Stat(PolkitdPath); err != nil {
		return nil, fmt.Errorf("polkitd: %w (make deps installs it)", err)
	}
	conn, err := dbus.Connect(addr)
	if err != nil {
		return nil, fmt.Errorf("polkitd: connect %s: %w", addr, err)
	}
	defer conn.Close()
	cmd := exec.Command(PolkitdPath, "--no-debug")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
	p, err := StartProcess("polkitd", logPath, cmd)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := WaitForOwner(ctx, conn, "org.freedesktop.PolicyKit1", p); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("polkitd: %w", err)
	}
	return p, nil
}
