package tray

import (
	"context"
	"errors"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Backend is what the tray needs from the VPN services. ClientBackend
// implements it on app/client; tests use a fake.
type Backend interface {
	// Profiles lists the profiles the user may start.
	Profiles(ctx context.Context) ([]Profile, error)
	// Sessions lists the sessions the user can see, with their status.
	Sessions(ctx context.Context) ([]Session, error)
	// Start creates a session for a profile and drives it through
	// openvpn3's start loop (app/client's Session.Start), asking p for
	// user input whenever the queue has unanswered slots. It returns once
	// the session is connected, waits for web sign-in, or failed.
	Start(ctx context.Context, profile dbus.ObjectPath, p Prompter) (dbus.ObjectPath, error)
	// Pause, Resume, Restart and Disconnect act on a session.
	Pause(ctx context.Context, s dbus.ObjectPath) error
	Resume(ctx context.Context, s dbus.ObjectPath) error
	Restart(ctx context.Context, s dbus.ObjectPath) error
	Disconnect(ctx context.Context, s dbus.ObjectPath) error
	// PendingSlots lists the session's unanswered user-input slots.
	PendingSlots(ctx context.Context, s dbus.ObjectPath) ([]Slot, error)
	// Details reads what the statistics window shows.
	Details(ctx context.Context, s dbus.ObjectPath) (Details, error)
	// Import stores a profile; the error carries the helper's text.
	Import(ctx context.Context, name, text string) (dbus.ObjectPath, error)
	// SetDCO switches data-channel offload for a profile.
	SetDCO(ctx context.Context, profile dbus.ObjectPath, on bool) error
	// Events delivers service events until ctx ends (the channel closes).
	Events(ctx context.Context) (<-chan Event, error)
	// Follow forwards one session's StatusChange and Log signals
	// (LogForward) until ctx ends or the session goes away.
	Follow(ctx context.Context, s dbus.ObjectPath) (<-chan SessionSignal, error)
}

// Prompter answers user-input slots for a session: it returns one value per
// slot, in order, or an error when the person cancelled.
type Prompter func(ctx context.Context, session dbus.ObjectPath, slots []Slot) ([]string, error)

// ErrCancelled is what a Prompter returns when the person closed the dialog.
var ErrCancelled = errors.New("cancelled")

// Profile is one importable/startable configuration profile.
type Profile struct {
	Path dbus.ObjectPath
	Name string
	DCO  bool
}

// Session is one live session as the session manager lists it.
type Session struct {
	Path       dbus.ObjectPath
	ConfigPath dbus.ObjectPath
	ConfigName string
	Status     api.Status
}

// Slot is one user-input slot of the session's queue.
type Slot struct {
	Type        api.AttentionType
	Group       api.AttentionGroup
	ID          uint32
	Name        string // the variable name, e.g. "username"
	Description string // the prompt text ("Auth User name", a challenge text)
	Hidden      bool   // mask the input
}

// Details is what the statistics window shows besides the counters.
type Details struct {
	Stats       map[string]int64
	Server      string // protocol:address:port
	Device      string
	Created     time.Time
	ConnectedAt time.Time // zero unless connected
}

// EventKind says what an Event reports.
type EventKind int

const (
	EventSessionCreated EventKind = iota + 1
	EventSessionDestroyed
	EventProfilesChanged
	EventAttention  // AttentionRequired for Session
	EventHelperUp   // the session manager's name got an owner
	EventHelperDown // … lost it
)

// Event is a service event the tray reacts to.
type Event struct {
	Kind      EventKind
	Session   dbus.ObjectPath
	Attention api.AttentionGroup
	Message   string
}

// SessionSignal is a forwarded StatusChange (IsStatus) or Log line.
type SessionSignal struct {
	IsStatus bool
	Status   api.Status
	Category api.LogCategory
	Message  string
	Time     time.Time
}
