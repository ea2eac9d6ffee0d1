package tray

import (
	"context"
	"sync"

	"fyne.io/fyne/v2/lang"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray/notify"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Sender shows a notification and returns its id (notify.Client).
type Sender interface {
	Notify(ctx context.Context, m notify.Message) (uint32, error)
}

// noteKind is what a status is worth telling: statuses of one kind are one
// notification, so a reconnect loop (RECONNECTING, CONNECTING,
// RECONNECTING, …) notifies once.
type noteKind int

const (
	noteNone noteKind = iota
	noteConnected
	noteDropped // the tunnel was up and is reconnecting
	noteFailed
	notePaused
	noteDisconnected
	noteCredentials
	noteWebAuth
)

func kindOf(st api.Status) noteKind {
	switch st.Minor {
	case api.StatusMinorConnConnected:
		return noteConnected
	case api.StatusMinorConnReconnecting:
		return noteDropped
	case api.StatusMinorConnFailed, api.StatusMinorConnAuthFailed, api.StatusMinorProcKilled, api.StatusMinorCfgError:
		return noteFailed
	case api.StatusMinorConnPaused:
		return notePaused
	case api.StatusMinorConnDisconnected, api.StatusMinorConnDone, api.StatusMinorProcStopped:
		return noteDisconnected
	case api.StatusMinorCfgRequireUser:
		return noteCredentials
	case api.StatusMinorSessAuthURL:
		return noteWebAuth
	}
	return noteNone
}

// Notifier turns session status changes into notifications: one bubble per
// session that each new one replaces (replaces_id), critical urgency when
// a tunnel drops or fails, nothing when the kind of news did not change.
type Notifier struct {
	Sender  Sender
	Enabled func() bool // nil: always on

	mu       sync.Mutex
	last     map[dbus.ObjectPath]noteKind
	ids      map[dbus.ObjectPath]uint32
	byID     map[uint32]dbus.ObjectPath
	urls     map[dbus.ObjectPath]string
	wasConnd map[dbus.ObjectPath]bool
}

// ActionOpenURL is the action key of the "Open sign-in page" button.
const ActionOpenURL = "open-url"

// Status reports a session's new status; it sends at most one
// notification and returns whether it did.
func (n *Notifier) Status(ctx context.Context, session dbus.ObjectPath, profile string, st api.Status) bool {
	k := kindOf(st)
	if k == noteNone {
		return false
	}
	n.mu.Lock()
	if n.last == nil {
		n.last, n.ids, n.byID = map[dbus.ObjectPath]noteKind{}, map[dbus.ObjectPath]uint32{}, map[uint32]dbus.ObjectPath{}
		n.urls, n.wasConnd = map[dbus.ObjectPath]string{}, map[dbus.ObjectPath]bool{}
	}
	if n.last[session] == k {
		n.mu.Unlock()
		return false
	}
	n.last[session] = k
	dropped := n.wasConnd[session]
	if k == noteConnected {
		n.wasConnd[session] = true
	}
	replaces := n.ids[session]
	if k == noteWebAuth {
		n.urls[session] = st.Message
	}
	n.mu.Unlock()
	if n.Enabled != nil && !n.Enabled() {
		return false
	}
	m := notify.Message{Summary: profile, Urgency: notify.UrgencyNormal, Replaces: replaces}
	switch k {
	case noteConnected:
		m.Body = lang.L("Connected")
	case noteDropped:
		m.Body = lang.L("The connection dropped; reconnecting…")
		m.Urgency = notify.UrgencyCritical
	case noteFailed:
		m.Body = lang.L("{{.State}}: {{.Reason}}", map[string]any{"State": StatusText(st), "Reason": st.Message})
		if st.Message == "" {
			m.Body = StatusText(st)
		}
		if dropped {
			m.Urgency = notify.UrgencyCritical
		}
	case notePaused:
		m.Body = lang.L("Paused")
	case noteDisconnected:
		m.Body = lang.L("Disconnected")
		if dropped && st.Minor != api.StatusMinorProcStopped {
			m.Urgency = notify.UrgencyCritical
		}
	case noteCredentials:
		m.Body = lang.L("Credentials needed to connect")
	case noteWebAuth:
		m.Body = lang.L("Sign in in your web browser to connect")
		m.Actions = map[string]string{ActionOpenURL: lang.L("Open sign-in page")}
	}
	id, err := n.Sender.Notify(ctx, m)
	if err != nil {
		return false
	}
	n.mu.Lock()
	n.ids[session] = id
	n.byID[id] = session
	n.mu.Unlock()
	return true
}

// Forget drops a session's state once it is gone.
func (n *Notifier) Forget(session dbus.ObjectPath) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.last, session)
	delete(n.urls, session)
	delete(n.wasConnd, session)
	if id, ok := n.ids[session]; ok {
		delete(n.byID, id)
		delete(n.ids, session)
	}
}

// URLFor returns the web sign-in URL of the session a notification id
// belongs to, for the "Open sign-in page" action.
func (n *Notifier) URLFor(id uint32) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.byID[id]
	if !ok {
		return "", false
	}
	u, ok := n.urls[s]
	return u, ok
}
