package sessionmgr

import (
	"context"
	"errors"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
)

// Authorizer asks polkit whether a D-Bus caller may perform an action
// (helper/polkit.Authority implements it).
type Authorizer interface {
	Require(ctx context.Context, busName, actionID string, interactive bool) error
}

// Access control of session objects, in this order:
//
//  1. the UID rules of spec §5.3 (aclAllows): owner, ACL, public_access,
//     restrict_log_access; root may read properties but has no other
//     rights; only the owner changes the ACL or the access flags;
//  2. the backend must answer, else the session is closed ("Backend VPN
//     process did not respond"): a method forwarded to the backend
//     (forwardedMethods) is its own test, any other method is preceded
//     by a Ping, as upstream pings before every method, unless the
//     backend answered one of the manager's calls within freshAnswer
//     (a front-end's LogForward right after NewTunnel or Ready: the
//     backend, busy with the handshake begun ahead, answered that Ping
//     late, and Connect waited for it). A backend that hangs is still
//     found out: by the first call after freshAnswer, or any forwarded
//     one;
//  3. polkit (gui-ux §5), only for method calls and only when an
//     Authorizer is configured:
//     - a caller the UID rules admit needs net.ovpn3go.session.control-own
//       for NewTunnel, Connect, Pause, Resume, Restart and Disconnect (the
//       shipped policy says yes for local active/inactive sessions and
//       auth_admin for remote ones). If polkitd is not on the bus at all
//       the UID rules alone decide, as in openvpn3;
//     - a caller the UID rules refuse may still act when polkit grants
//       net.ovpn3go.session.control-other (auth_admin_keep: an
//       administrator, or root, which polkit always authorizes). Without
//       polkitd nobody gets beyond the UID rules. Property access never
//       asks polkit;
//     - a yes (or polkitd's absence) stands for the same caller and action
//       for polkit.Fresh: the Connect that follows a NewTunnel does not
//       wait for polkitd a second time (BenchmarkCheck: ~3 ms a question);
//     - root (UID 0, as the bus daemon reports it) is not asked for
//       control-own: polkitd authorizes root for any action, after
//       resolving the caller, and polkitd's absence lets control-own pass
//       too, so the question could only cost root's session start its
//       milliseconds and polkitd's CPU beside the handshake.
//
// Refusals are openvpn3's errors ("Access denied", domain
// net.openvpn.gdbuspp, or AccessDenied for properties), except that a
// polkit challenge the caller did not allow to be interactive is
// org.freedesktop.DBus.Error.InteractiveAuthorizationRequired, so a
// modern client can retry with the ALLOW_INTERACTIVE_AUTHORIZATION flag.
// AllowUserInteraction is passed to polkit only when the call carries
// that flag.

// controlMethods are the calls that start or change a tunnel.
var controlMethods = map[string]bool{"Connect": true, "Pause": true, "Resume": true, "Restart": true, "Disconnect": true}

// forwardedMethods are the calls whose handler calls the backend with the
// same timeout as the Ping would (forwardReply): a backend that does not
// answer is found out and killed there, so no Ping goes before them (one
// round trip less on Ready and Connect).
var forwardedMethods = map[string]bool{"Connect": true, "Pause": true, "Resume": true, "Restart": true, "Ready": true,
	"UserInputQueueGetTypeGroup": true, "UserInputQueueFetch": true, "UserInputQueueCheck": true, "UserInputProvide": true}

// aclAllows applies the UID rules of spec §5.3 to one call.
func aclAllows(s *session, op busobj.Op, member string, uid uint32) bool {
	a := s.access()
	s.mu.Lock()
	restrict := s.restrictLogAccess
	s.mu.Unlock()
	switch op {
	case busobj.OpMethod:
		switch member {
		case "AccessGrant", "AccessRevoke":
			return a.isOwner(uid)
		case "LogForward":
			return a.mayForwardLog(uid, restrict)
		default:
			return a.mayCall(uid)
		}
	case busobj.OpGet:
		return a.mayRead(uid)
	case busobj.OpSet:
		switch member {
		case "public_access", "restrict_log_access":
			return a.isOwner(uid)
		default:
			return a.granted(uid, false)
		}
	}
	return false
}

// authorize is the session objects' Authorize hook.
func (m *Manager) authorize(s *session) func(c *busobj.Call) error {
	return func(c *busobj.Call) error {
		if m.isGone(s) {
			return busobj.Deny(textAccessDenied + ": Session no longer valid")
		}
		ok := aclAllows(s, c.Op, c.Member, c.UID)
		if c.Op != busobj.OpMethod {
			if !ok {
				return busobj.Deny(textAccessDenied)
			}
			return nil
		}
		s.mu.Lock()
		restarting := s.restartWait != nil
		s.mu.Unlock()
		if restarting && c.Member != "Disconnect" {
			return errGeneric(textStopped)
		}
		if !restarting && !forwardedMethods[c.Member] && !m.answeredLately(s) {
			if err := m.pingBackend(c.Ctx, s); err != nil {
				return err
			}
		}
		if ok {
			if controlMethods[c.Member] {
				return m.requireOwn(c.Ctx, c)
			}
			return nil
		}
		return m.requireOther(c.Ctx, c.Sender, c.Interactive)
	}
}

// requireOwn checks control-own for a caller the UID rules admit, c, as
// long as ctx lasts; root passes without asking (polkit's answer for root
// is always yes).
func (m *Manager) requireOwn(ctx context.Context, c *busobj.Call) error {
	if m.polkit == nil || c.UID == 0 {
		return nil
	}
	err := m.polkit.Require(ctx, c.Sender, polkit.ActionSessionControlOwn, c.Interactive)
	if err == nil || errors.Is(err, polkit.ErrNoAuthority) {
		return nil
	}
	return m.refusal(c.Sender, polkit.ActionSessionControlOwn, err)
}

// requireOther checks control-other for a caller the UID rules refuse.
func (m *Manager) requireOther(ctx context.Context, sender string, interactive bool) error {
	if m.polkit == nil {
		return errGeneric(textAccessDenied)
	}
	err := m.polkit.Require(ctx, sender, polkit.ActionSessionControlOther, interactive)
	if err == nil {
		m.log.Info("polkit allows access beyond the session ACL", "caller", sender, "action", polkit.ActionSessionControlOther)
		return nil
	}
	if errors.Is(err, polkit.ErrNoAuthority) {
		return errGeneric(textAccessDenied)
	}
	return m.refusal(sender, polkit.ActionSessionControlOther, err)
}

func (m *Manager) refusal(sender, action string, err error) error {
	m.log.Info("polkit refused", "caller", sender, "action", action, "err", err)
	if errors.Is(err, polkit.ErrInteractionRequired) {
		return dbus.NewError(polkit.ErrNameInteractiveAuthorizationRequired,
			[]any{textAccessDenied + ": interactive authorization required (" + action + ")"})
	}
	return errGeneric(textAccessDenied)
}

// freshAnswer is how long a backend's answer to one of the manager's calls
// stands for the Ping before a method (authz rule 2): long enough for a
// front-end's calls right after NewTunnel or Ready even on a loaded
// machine, short against the CallTimeout a hung backend is given.
const freshAnswer = time.Second

// noteAnswer records that the backend answered a call (err == nil: a reply
// came; an error may be the bus's or a timeout, so it vouches for nothing).
func (m *Manager) noteAnswer(s *session, err error) {
	if err != nil {
		return
	}
	now := m.now()
	s.mu.Lock()
	if now.After(s.answered) {
		s.answered = now
	}
	s.mu.Unlock()
}

// answeredLately says whether the backend answered within freshAnswer.
func (m *Manager) answeredLately(s *session) bool {
	s.mu.Lock()
	at := s.answered
	s.mu.Unlock()
	return !at.IsZero() && m.now().Sub(at) < freshAnswer
}

// pingBackend checks that the backend answers before a method runs
// (upstream does this in every authorization check). A backend that does
// not answer is killed and its session closed. callerCtx ends when the
// caller leaves the bus: that says nothing about the backend, so the
// call is dropped and the backend left alone.
func (m *Manager) pingBackend(callerCtx context.Context, s *session) error {
	ctx, cancel := context.WithTimeout(callerCtx, m.callTO)
	defer cancel()
	var alive bool
	err := m.backendObj(s).CallWithContext(ctx, api.InterfaceBackends+".Ping", 0).Store(&alive)
	if err == nil && alive {
		m.noteAnswer(s, nil)
		return nil
	}
	if callerCtx.Err() != nil {
		return errGeneric("Caller left: " + callerCtx.Err().Error())
	}
	if m.isGone(s) {
		return busobj.Deny(textAccessDenied + ": Session no longer valid")
	}
	return m.unanswered(s, "Ping", err)
}

// unanswered ends a session whose backend did not answer method within
// CallTimeout (err): a backend that is exiting on its own is left to watch,
// which removes the session; a hung one is killed.
func (m *Manager) unanswered(s *session, method string, err error) error {
	select {
	case <-s.busGone: // exiting on its own: watch removes the session
		return errGeneric(textStopped)
	case <-s.proc.Done():
		return errGeneric(textStopped)
	default:
	}
	m.log.Error("backend did not answer "+method+"; killing it", "session", s.path, "pid", s.backendPID, "err", err)
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	m.backendObj(s).Call(api.InterfaceBackends+".ForceShutdown", dbus.FlagNoReplyExpected)
	s.proc.Kill()
	return errGeneric("Backend VPN process did not respond")
}
