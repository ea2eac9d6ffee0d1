// Package polkit asks polkitd whether a D-Bus caller of the helper may
// perform one of the helper's actions (polkit/net.ovpn3go.policy).
//
// The subject is always the caller's unique bus name ("system-bus-name"):
// polkitd resolves the process and user behind it itself, which avoids the
// PID-reuse race of process subjects. User interaction (an authentication
// dialog shown by the session's polkit agent) is requested only when the
// caller's D-Bus message carried the ALLOW_INTERACTIVE_AUTHORIZATION flag,
// i.e. when the caller said it is prepared to wait for a prompt.
//
// Require remembers a yes, and polkitd's absence, for Fresh per caller and
// action: a session start asks once for its NewTunnel and the Connect that
// follows, each answer a round trip to polkitd on the way to connected.
// A refusal is never remembered, and polkitd itself keeps *_keep
// authorizations.
package polkit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"
)

// The polkit authority on the system bus.
const (
	ServiceName        = "org.freedesktop.PolicyKit1"
	AuthorityPath      = dbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	AuthorityInterface = "org.freedesktop.PolicyKit1.Authority"
)

// CheckAuthorization flags (polkit's PolkitCheckAuthorizationFlags).
const flagAllowUserInteraction uint32 = 1

// Default bounds for a check whose context has no deadline. A prompt can
// stay open for a long time, a plain lookup should answer at once.
const (
	defaultTimeout            = 30 * time.Second
	defaultInteractiveTimeout = 5 * time.Minute
	cancelTimeout             = 5 * time.Second
)

// Result is polkitd's answer.
type Result struct {
	// Authorized: the subject may perform the action now.
	Authorized bool
	// Challenge: not authorized, but would be after authenticating (the
	// action is auth_self*/auth_admin* for this subject). With interaction
	// allowed, a challenge result means no agent could ask the user, or
	// the user dismissed the dialog.
	Challenge bool
	// Details from polkitd, e.g. polkit.temporary_authorization_id,
	// polkit.retains_authorization_after_challenge, polkit.dismissed.
	Details map[string]string
}

// Errors Check and Require report; test with errors.Is.
var (
	// ErrNoAuthority: polkitd is not on the bus (not installed, not
	// running, not activatable). Callers should fail closed.
	ErrNoAuthority = errors.New("polkit authority " + ServiceName + " is not available on the bus")
	// ErrCallerGone: the subject's bus name has no owner (the caller
	// disconnected before or during the check).
	ErrCallerGone = errors.New("the caller is no longer on the bus")
	// ErrNotAuthorized: polkitd said no (Require).
	ErrNotAuthorized = errors.New("not authorized")
	// ErrInteractionRequired: the caller could be authorized after
	// authenticating, but did not allow interactive authorization (Require).
	ErrInteractionRequired = errors.New("interactive authorization required")
)

// Fresh is how long Require takes polkitd's yes, or its absence from the
// bus, as the answer for the same caller and action. A caller is a unique
// bus name, never reused while the bus runs, so the answer is about the
// same process; the window covers a session start's calls (the openvpn3
// scripts wait up to 2 s between NewTunnel and Connect) and is short
// against a change of polkit rules or of the user's seat.
const Fresh = 5 * time.Second

// maxRemembered bounds the answers kept at once; beyond it (many callers
// within Fresh) an answer is simply not kept.
const maxRemembered = 1024

// Authority checks authorizations with polkitd over one bus connection.
// It is safe for concurrent use.
type Authority struct {
	conn   *dbus.Conn
	nextID atomic.Uint64 // for unique cancellation ids
	now    func() time.Time

	mu         sync.Mutex
	remembered map[asked]answer
}

// asked is one question Require put to polkitd.
type asked struct{ busName, actionID string }

// answer is a remembered outcome of Require: a yes (err nil) or polkitd's
// absence (err wraps ErrNoAuthority), good until expires.
type answer struct {
	err     error
	expires time.Time
}

// New returns an Authority using conn (the helper's system bus connection).
func New(conn *dbus.Conn) *Authority {
	return &Authority{conn: conn, now: time.Now, remembered: map[asked]answer{}}
}

// subject is polkit's (sa{sv}) subject structure.
type subject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// checkResult is polkit's (bba{ss}) reply structure.
type checkResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// Check asks polkitd whether the connection busName (a unique name such as
// ":1.42", normally the sender of the method call being authorized) may
// perform actionID. interactive must be true only when the caller's message
// carried the ALLOW_INTERACTIVE_AUTHORIZATION flag; the call may then block
// while an agent prompts the user. Cancelling ctx cancels the prompt.
//
// A refusal is a Result with Authorized false, not an error; errors mean no
// answer was obtained (bad arguments, polkitd absent or failing).
func (a *Authority) Check(ctx context.Context, busName, actionID string, interactive bool) (Result, error) {
	if err := validate(busName, actionID); err != nil {
		return Result{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		d := defaultTimeout
		if interactive {
			d = defaultInteractiveTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}

	subj := subject{
		Kind:    "system-bus-name",
		Details: map[string]dbus.Variant{"name": dbus.MakeVariant(busName)},
	}
	var flags uint32
	cancellationID := ""
	if interactive {
		flags |= flagAllowUserInteraction
		// Only a check that can block on a prompt needs to be cancellable;
		// the id must be unique per connection of ours.
		cancellationID = "ovpn3go-" + strconv.FormatUint(a.nextID.Add(1), 10)
	}

	obj := a.conn.Object(ServiceName, AuthorityPath)
	call := obj.CallWithContext(ctx, AuthorityInterface+".CheckAuthorization", 0,
		subj, actionID, map[string]string{}, flags, cancellationID)
	if call.Err != nil {
		if ctx.Err() != nil && cancellationID != "" {
			a.cancel(obj, cancellationID)
		}
		return Result{}, a.checkError(busName, actionID, call.Err)
	}
	var r checkResult
	if err := call.Store(&r); err != nil {
		return Result{}, fmt.Errorf("polkit check %s for %s: unexpected reply: %w", actionID, busName, err)
	}
	if r.Details == nil {
		r.Details = map[string]string{}
	}
	return Result{Authorized: r.IsAuthorized, Challenge: r.IsChallenge, Details: r.Details}, nil
}

// Require is Check reduced to an error: nil when authorized, otherwise an
// error wrapping ErrInteractionRequired (a challenge without the interactive
// flag; the client may retry with it), ErrNotAuthorized, or Check's error.
//
// A yes, or polkitd's absence, is the answer for the same busName and
// actionID for Fresh afterwards, without asking again.
func (a *Authority) Require(ctx context.Context, busName, actionID string, interactive bool) error {
	q := asked{busName, actionID}
	if ans, ok := a.recall(q); ok {
		return ans.err
	}
	r, err := a.Check(ctx, busName, actionID, interactive)
	switch {
	case err != nil:
		if errors.Is(err, ErrNoAuthority) {
			a.remember(q, err)
		}
		return err
	case r.Authorized:
		a.remember(q, nil)
		return nil
	case r.Challenge && !interactive:
		return fmt.Errorf("%s: %w", actionID, ErrInteractionRequired)
	case r.Challenge:
		// Interaction was allowed and still no yes: the user dismissed the
		// dialog, failed to authenticate, or no agent is running.
		return fmt.Errorf("%s: %w (authentication failed, was dismissed, or no polkit authentication agent is running)", actionID, ErrNotAuthorized)
	default:
		return fmt.Errorf("%s: %w", actionID, ErrNotAuthorized)
	}
}

// recall returns a remembered answer to q that has not expired.
func (a *Authority) recall(q asked) (answer, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ans, ok := a.remembered[q]
	if !ok || !a.now().Before(ans.expires) {
		return answer{}, false
	}
	return ans, true
}

// remember keeps err as the answer to q for Fresh; expired answers go
// first.
func (a *Authority) remember(q asked, err error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.remembered) >= maxRemembered {
		for k, ans := range a.remembered {
			if !now.Before(ans.expires) {
				delete(a.remembered, k)
			}
		}
		if len(a.remembered) >= maxRemembered {
			return
		}
	}
	a.remembered[q] = answer{err: err, expires: now.Add(Fresh)}
}

// D-Bus error names a service replies with after a refusal.
const (
	ErrNameAccessDenied                     = "org.freedesktop.DBus.Error.AccessDenied"
	ErrNameInteractiveAuthorizationRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
)

// ReplyError turns a non-nil error from Require into the D-Bus error the
// helper replies with: InteractiveAuthorizationRequired when the client may
// retry with the interactive flag, AccessDenied otherwise (failing closed
// also when polkitd is unavailable). ReplyError(nil) is nil.
func ReplyError(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	name := ErrNameAccessDenied
	if errors.Is(err, ErrInteractionRequired) {
		name = ErrNameInteractiveAuthorizationRequired
	}
	return dbus.NewError(name, []any{err.Error()})
}

func (a *Authority) cancel(obj dbus.BusObject, id string) {
	// The caller's context is gone; a fresh short one bounds this call.
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	_ = obj.CallWithContext(ctx, AuthorityInterface+".CancelCheckAuthorization", 0, id).Err
}

func validate(busName, actionID string) error {
	// A well-known name could change owner between the check and the
	// action, so only unique names are accepted.
	if !strings.HasPrefix(busName, ":") || len(busName) < 2 || len(busName) > 255 {
		return fmt.Errorf("polkit check: subject %q is not a unique bus name", busName)
	}
	if actionID == "" || len(actionID) > 255 {
		return fmt.Errorf("polkit check: invalid action id %q", actionID)
	}
	for _, c := range actionID {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("polkit check: invalid action id %q: only letters, digits, '.', '-' and '_' are allowed", actionID)
		}
	}
	return nil
}

func (a *Authority) checkError(busName, actionID string, err error) error {
	var derr dbus.Error
	var pderr *dbus.Error
	name := ""
	if errors.As(err, &derr) {
		name = derr.Name
	} else if errors.As(err, &pderr) {
		name = pderr.Name
	}
	var cause error
	switch name {
	case "org.freedesktop.DBus.Error.ServiceUnknown":
		// From the bus: nobody owns the authority and it cannot be activated.
		cause = ErrNoAuthority
	case "org.freedesktop.DBus.Error.NameHasNoOwner":
		// polkitd relays this when it cannot resolve the subject; the bus
		// sends it for the destination only with NO_AUTO_START, which we do
		// not set. Ask the bus which name is missing rather than parse text.
		cause = ErrCallerGone
		if !a.hasOwner(ServiceName) {
			cause = ErrNoAuthority
		}
	}
	if cause != nil {
		return fmt.Errorf("polkit check %s for %s: %w: %w", actionID, busName, cause, err)
	}
	return fmt.Errorf("polkit check %s for %s: %w", actionID, busName, err)
}

func (a *Authority) hasOwner(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	var has bool
	err := a.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
	return err == nil && has
}
