package tray

import (
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray/testctl"
)

// Test control: the integration test has to answer a real Fyne dialog in a
// real ovpn3-tray under Xvfb. Synthesising keystrokes into a GL window is
// fragile, so the binary exports this small object on its session bus when
// (and only when) OVPN3_TRAY_TEST_CONTROL=1 is set. It works on the very
// widgets a person types into: it sets the entries' text, the Remember
// check, and taps the dialog's Connect button, so everything after the
// typing (answers, remembering, the start loop) runs as for a person.
const (
	ControlEnv       = testctl.Env
	ControlName      = testctl.Name
	ControlPath      = testctl.Path
	ControlInterface = testctl.Interface
)

type control struct{ t *Tray }

// ExportControl exports the test control on conn and owns ControlName.
func (t *Tray) ExportControl(conn *dbus.Conn) error {
	if err := conn.ExportMethodTable(map[string]any{
		"Dialogs":      control{t}.dialogs,
		"AnswerDialog": control{t}.answer,
	}, ControlPath, ControlInterface); err != nil {
		return fmt.Errorf("test control: %w", err)
	}
	r, err := conn.RequestName(ControlName, dbus.NameFlagDoNotQueue)
	if err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("test control: own %s: %v %v", ControlName, r, err)
	}
	return nil
}

// dialogs lists the open credential dialogs as "<session path> <slot
// name>,<slot name>…".
func (c control) dialogs() ([]string, *dbus.Error) {
	c.t.creds.mu.Lock()
	defer c.t.creds.mu.Unlock()
	out := []string{}
	for s, o := range c.t.creds.open {
		var names []string
		for _, sl := range o.form.Slots {
			names = append(names, sl.Name)
		}
		out = append(out, string(s)+" "+strings.Join(names, ","))
	}
	return out, nil
}

// answer types values into the session's dialog (an empty value leaves
// the field as it is, e.g. filled in from the keyring), sets Remember and
// taps Connect.
func (c control) answer(session dbus.ObjectPath, values []string, remember bool) *dbus.Error {
	f := c.t.creds.Open(session)
	if f == nil {
		return dbus.MakeFailedError(fmt.Errorf("no credential dialog for %s", session))
	}
	if len(values) != len(f.Entries) {
		return dbus.MakeFailedError(fmt.Errorf("%d values for %d fields", len(values), len(f.Entries)))
	}
	onUIWait(func() {
		for i, e := range f.Entries {
			if values[i] != "" {
				e.SetText(values[i])
			}
		}
		if f.Remember != nil {
			f.Remember.SetChecked(remember)
		}
		f.Submit.Tapped(&fyne.PointEvent{})
	})
	return nil
}
