package desktoptest

import (
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray/testctl"
)

// TrayDialogs lists the tray's open credential dialogs through its test
// control (OVPN3_TRAY_TEST_CONTROL=1): session path and slot names.
func TrayDialogs(conn *dbus.Conn) (map[dbus.ObjectPath]string, error) {
	var out []string
	if err := conn.Object(testctl.Name, testctl.Path).Call(testctl.Interface+".Dialogs", 0).Store(&out); err != nil {
		return nil, fmt.Errorf("Dialogs: %w", err)
	}
	m := map[dbus.ObjectPath]string{}
	for _, d := range out {
		p, slots, _ := strings.Cut(d, " ")
		m[dbus.ObjectPath(p)] = slots
	}
	return m, nil
}

// TrayAnswer fills the session's dialog (empty values keep a field as it
// is), sets Remember and submits it.
func TrayAnswer(conn *dbus.Conn, session dbus.ObjectPath, values []string, remember bool) error {
	if err := conn.Object(testctl.Name, testctl.Path).Call(testctl.Interface+".AnswerDialog", 0, session, values, remember).Err; err != nil {
		return fmt.Errorf("AnswerDialog: %w", err)
	}
	return nil
}
