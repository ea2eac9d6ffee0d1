package tray

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/godbus/dbus/v5"
)

// One tray per desktop session: the first ovpn3-tray owns InstanceName on
// the session bus; a later `ovpn3-tray --import FILE` (a file manager
// opening a .ovpn file) hands the file to it and exits instead of starting
// a second icon.
const (
	InstanceName      = "net.ovpn3go.Tray"
	InstancePath      = dbus.ObjectPath("/net/ovpn3go/Tray")
	InstanceInterface = "net.ovpn3go.Tray"
)

// ClaimInstance tries to become the session's tray. When it is, it exports
// Import(path) for later invocations and returns true.
func (t *Tray) ClaimInstance(conn *dbus.Conn) (bool, error) {
	r, err := conn.RequestName(InstanceName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return false, fmt.Errorf("claim %s: %w", InstanceName, err)
	}
	if r != dbus.RequestNameReplyPrimaryOwner {
		return false, nil
	}
	err = conn.ExportMethodTable(map[string]any{
		"Import": func(path string) *dbus.Error {
			if !filepath.IsAbs(path) {
				return dbus.MakeFailedError(fmt.Errorf("import: %q is not an absolute path", path))
			}
			t.ImportFromCommandLine(path)
			return nil
		},
	}, InstancePath, InstanceInterface)
	return true, err
}

// ForwardImport hands a profile file to the running tray.
func ForwardImport(ctx context.Context, conn *dbus.Conn, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := conn.Object(InstanceName, InstancePath).CallWithContext(ctx, InstanceInterface+".Import", 0, abs).Err; err != nil {
		return fmt.Errorf("hand %s to the running ovpn3-tray: %w", abs, err)
	}
	return nil
}
