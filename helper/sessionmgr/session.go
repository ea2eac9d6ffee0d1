package sessionmgr

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// LogEvent is a saved Log signal (the last_log property).
type LogEvent struct {
	Group, Category uint32
	Message         string
}

// session is one VPN session object and the backend process behind it.
// Fields set at creation never change; the rest are guarded by mu.
type session struct {
	path       dbus.ObjectPath
	token      string
	configPath dbus.ObjectPath
	configName string
	created    time.Time
	proc       Process
	backend    string // unique bus name of the backend's connection
	busName    string // net.openvpn.v3.backends.be<PID>
	backendPID uint32
	startedBy  uint32 // the UID whose MaxSessionsPerUser it counts against
	// auth is the NewTunnel caller's polkit answer, which the backend's
	// reading of the profile waits for (BackendOf); nil: nothing to wait
	// for (an automatic restart, NewTunnel without polkit).
	auth *authGate

	// gone is closed (closeGone) once the object was removed (backend
	// exited).
	gone     chan struct{}
	goneOnce sync.Once
	// busGone is closed once the bus reported the backend's connection
	// closed: every signal it sent has been handled by then.
	busGone     chan struct{}
	busGoneOnce sync.Once

	mu                sync.Mutex
	owner             uint32
	acl               []uint32
	publicAccess      bool
	restrictLogAccess bool
	logVerbosity      uint32
	status            api.Status
	lastLog           LogEvent
	dco               bool
	dcoSet            bool // dco changed locally, to be applied on Connect
	dcoLocked         bool
	connectCalled     bool
	stopping          bool   // Disconnect requested: exit is expected
	deviceName        string // cached from the backend for interface lookups
	// answered is when the backend last answered one of the manager's
	// calls (noteAnswer); a call soon after needs no Ping (authz.go).
	answered time.Time
	// busy releases Options.Busy (nil once released); busyTimer releases
	// it busyFor after the start at the latest.
	busy      func()
	busyTimer *time.Timer
	// forwards are the LogForward subscriptions: caller's unique name →
	// log-proxy object and the caller's UID (to drop it when the ACL
	// changes).
	forwards map[string]logForward
	// killed: the manager killed the backend (it did not answer).
	killed bool
	// usable: the session was connected or waited for the user at least
	// once; reaped: reapUnusable ended it because it never was.
	usable, reaped bool
	// Automatic restart (automatic-restart=on-failure): restarts in a
	// row, when the session was last connected, and while a restart is
	// pending a channel Disconnect closes to abandon it (abandonRestart:
	// Disconnect and Close may both try).
	autoRestart      bool
	restarts         int
	connectedAt      time.Time
	restartWait      chan struct{}
	restartAbandoned bool
}

// closeGone marks the session removed; the backend's exit, a failed
// restart and a Disconnect during a restart wait may each get there. The
// start's Busy goes first: whoever waits for gone (Disconnect) finds it
// released.
func (s *session) closeGone() {
	s.notBusy()
	s.goneOnce.Do(func() { close(s.gone) })
}

// notBusy releases the start's Options.Busy: the session is connected,
// waits for the user, is gone, or took busyFor.
func (s *session) notBusy() {
	s.mu.Lock()
	release, t := s.busy, s.busyTimer
	s.busy, s.busyTimer = nil, nil
	s.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if release != nil {
		release()
	}
}

// abandonRestart ends a pending automatic restart and reports whether one
// was pending. restartWait is closed once however many callers race here.
func (s *session) abandonRestart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restartWait == nil {
		return false
	}
	if !s.restartAbandoned {
		s.restartAbandoned = true
		close(s.restartWait)
	}
	return true
}

// forwardsSnapshot copies the LogForward subscriptions: LogForward,
// pruneForwards and dropForwards change the map under mu at any time.
func (s *session) forwardsSnapshot() map[string]logForward {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.forwards)
}

type logForward struct {
	path dbus.ObjectPath
	uid  uint32
}

// access is the ACL view of a session used by the checks of spec §5.3.
type access struct {
	owner  uint32
	acl    []uint32
	public bool
}

func (s *session) access() access {
	s.mu.Lock()
	defer s.mu.Unlock()
	return access{owner: s.owner, acl: slices.Clone(s.acl), public: s.publicAccess}
}

// granted is CheckACL: owner or ACL member, or anyone when public and
// the public flag counts for this operation.
func (a access) granted(uid uint32, honourPublic bool) bool {
	if honourPublic && a.public {
		return true
	}
	return uid == a.owner || slices.Contains(a.acl, uid)
}

// mayCall: all session methods except AccessGrant/Revoke and LogForward.
func (a access) mayCall(uid uint32) bool { return a.granted(uid, true) }

// mayRead: property reads ignore public_access but admit root (and the
// openvpn service user, which is root here too).
func (a access) mayRead(uid uint32) bool { return uid == 0 || a.granted(uid, false) }

func (a access) isOwner(uid uint32) bool { return uid == a.owner }

// mayForwardLog: LogForward is owner-only while restrict_log_access is set
// (the default), otherwise owner, ACL or public.
func (a access) mayForwardLog(uid uint32, restrict bool) bool {
	return a.isOwner(uid) || (!restrict && a.mayCall(uid))
}

// visible: listed by the manager's Fetch/Lookup methods.
func (a access) visible(uid uint32) bool { return a.granted(uid, true) }
