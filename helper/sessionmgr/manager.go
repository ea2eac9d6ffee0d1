// Package sessionmgr implements net.openvpn.v3.sessions: the manager object
// /net/openvpn/v3/sessions and one session object per VPN tunnel. For every
// session it starts a backend process (helper/backend, re-executed from the
// helper binary), waits for the backend to register over D-Bus, forwards
// front-end calls to it, and removes the session as soon as the process is
// gone, however it died (Disconnect, exit, SIGKILL: SESS_DESTROYED follows
// the process's exit and the end of its bus connection, both events).
//
// Signals follow openvpn3 (spec §1.5): SessionManagerEvent and the
// sessions' AttentionRequired are broadcast; a session's StatusChange and
// Log go only to the log service. Front-ends follow a session with
// LogForward, which asks the log service (LogProxies) for a proxy that
// sends the backend's Log/StatusChange unicast to the caller, from the
// session path with the net.openvpn.v3.backends interface; proxies of
// callers who lose access are removed at once.
//
// Access control (owner, ACL, public_access, restrict_log_access, the
// backend Ping and polkit) is described in authz.go.
package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/ratelimit"
)

// Profiles is the configuration manager as seen in-process by the session
// manager.
type Profiles interface {
	// UseProfile checks that uid may start a session with the profile at
	// path and describes the profile. The error is returned to the D-Bus
	// caller as it is.
	UseProfile(path dbus.ObjectPath, uid uint32) (ProfileInfo, error)
}

// ProfileInfo is what the session manager needs to know about a profile.
type ProfileInfo struct {
	Name  string
	Owner uint32
	// TransferOwnerSession: sessions belong to the profile's owner, the
	// starting user is put on the session ACL (spec §5.3).
	TransferOwnerSession bool
	// AutoRestart: the profile's automatic-restart override is
	// on-failure: a backend that dies is started again (spec §1.4).
	AutoRestart bool
}

// Emitter sends signals from exported objects, broadcast (Emit) or to one
// connection (EmitTo).
type Emitter interface {
	Emit(path dbus.ObjectPath, iface, member string, args ...any) error
	EmitTo(destination string, path dbus.ObjectPath, iface, member string, args ...any) error
}

// Options configure a Manager. Conn, Profiles and Launcher are required.
type Options struct {
	Conn     *dbus.Conn
	Logger   *slog.Logger
	Profiles Profiles
	Launcher Launcher
	// CleanupPID is called with the PID of every backend process that has
	// exited, so netcfg can remove what that process left behind.
	CleanupPID func(pid uint32)
	// StartTimeout bounds the wait for a new backend to register.
	StartTimeout time.Duration
	// CallTimeout bounds each call to a backend.
	CallTimeout time.Duration
	// StopTimeout bounds the wait for a backend to exit after Disconnect
	// before it is killed.
	StopTimeout time.Duration
	// Logs makes LogForward work (the log service); without it
	// LogForward fails.
	Logs LogProxies
	// Polkit, if set, is asked as described in authz.go.
	Polkit Authorizer
	// RestartDelay is the first automatic-restart delay (default 3 s);
	// it doubles with every retry up to 768 s, as upstream.
	RestartDelay time.Duration
	// MaxSessionsPerUser caps the sessions one UID has running or
	// starting (by who started them); root is not capped. Default
	// DefaultMaxSessionsPerUser.
	MaxSessionsPerUser int
	// UsableWithin bounds the time from a backend's registration until its
	// session is connected or waits for the user (credentials, a
	// challenge, web authentication, a failed login to retry); a session
	// that gets to neither is ended and reaped. Default
	// DefaultUsableWithin.
	UsableWithin time.Duration
	// NewTunnelRate limits NewTunnel calls over the bus per UID (root is
	// not limited); zero means unlimited.
	NewTunnelRate ratelimit.Rate
	// Now is the clock of the Ping rule (authz.go: a backend that answered
	// within freshAnswer is not pinged); nil: time.Now. Tests move it.
	Now func() time.Time
	// Busy, if set, is called when a session starts (NewTunnel, an
	// automatic restart); its release once the session is connected or
	// waits for the user, when the start fails or the session ends, and
	// at the latest busyFor after the start. ovpn3-helper passes
	// process.Busy: the daemon's collector runs at Go's default GOGC
	// meanwhile, not collecting once or twice on every session's way to
	// connected.
	Busy func() (release func())
}

// busyFor bounds how long one session start holds Options.Busy (a session
// that is never connected nor asks the user).
const busyFor = 30 * time.Second

// Defaults of the per-user limits (ovpn3-helper --max-sessions-per-user,
// --session-usable-within).
const (
	DefaultMaxSessionsPerUser = 10
	DefaultUsableWithin       = 10 * time.Minute
)

// DefaultNewTunnelRate is ovpn3-helper's default NewTunnel rate per user.
var DefaultNewTunnelRate = ratelimit.Rate{PerMinute: 20, Burst: 10}

// maxRestarts bounds automatic restarts in a row; the counter starts over
// when the session had been connected for restartReset before the crash.
const (
	maxRestarts     = 10
	restartReset    = 90 * time.Second
	maxRestartDelay = 768 * time.Second
)

// busGoneTimeout bounds the wait for the bus to report a dead backend's
// connection closed.
const busGoneTimeout = 2 * time.Second

// Manager is the session manager service.
type Manager struct {
	conn         *dbus.Conn
	log          *slog.Logger
	profiles     Profiles
	launcher     Launcher
	cleanup      func(pid uint32)
	logs         LogProxies
	polkit       Authorizer
	startTO      time.Duration
	callTO       time.Duration
	stopTO       time.Duration
	restartDelay time.Duration
	maxPerUser   int
	usableWithin time.Duration
	tunnelRate   *ratelimit.Limiter
	// reapTimer starts the UsableWithin timer of a new session (a test
	// replaces it to fire the bound itself); reapDecided, if set, is told
	// each decision (tests).
	reapTimer   func(time.Duration) <-chan time.Time
	reapDecided func(path dbus.ObjectPath, reaped bool)
	now         func() time.Time
	busy        func() (release func())

	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan *dbus.Signal
	wg     sync.WaitGroup

	mu      sync.Mutex
	emit    Emitter
	objects objectTable // nil until Export
	// busLookups: the busobj server after Export (its caches), nil before.
	busLookups busLookups
	sessions   map[dbus.ObjectPath]*session
	byToken    map[string]*session
	byBackend  map[string]*session      // unique bus name of the backend
	pending    map[string]*pendingStart // by token
	procs      map[string]Process       // every running backend, by token
	closed     bool
	logOwner   string // unique name of net.openvpn.v3.log; "" unknown
}

// objectTable exports and removes session objects.
type objectTable interface {
	exportSession(s *session) error
	unexportSession(s *session)
}

type registration struct {
	sender  string
	busName string
	pid     int32
}

// pendingStart is a backend started and not registered yet. Its
// RegistrationRequests are verified (verifyRegistration) before they reach
// reg: another process's request, even with the right token, changes
// nothing and cannot crowd out the real one.
type pendingStart struct {
	uid       uint32 // who started it (MaxSessionsPerUser); restarts are not counted
	restart   bool
	config    dbus.ObjectPath
	proc      Process // nil until launched
	reg       chan registration
	verifying int // requests being verified now, at most maxVerifying
	refused   int // requests with this token that were not the backend's
}

const maxVerifying = 4

// New creates the session manager and starts the goroutine that receives
// backend signals; Close stops it.
func New(opts Options) (*Manager, error) {
	if opts.Conn == nil || opts.Profiles == nil || opts.Launcher == nil {
		return nil, errors.New("sessionmgr: Conn, Profiles and Launcher are required")
	}
	m := &Manager{
		conn:         opts.Conn,
		log:          opts.Logger,
		profiles:     opts.Profiles,
		launcher:     opts.Launcher,
		cleanup:      opts.CleanupPID,
		logs:         opts.Logs,
		polkit:       opts.Polkit,
		startTO:      opts.StartTimeout,
		callTO:       opts.CallTimeout,
		stopTO:       opts.StopTimeout,
		restartDelay: opts.RestartDelay,
		maxPerUser:   opts.MaxSessionsPerUser,
		usableWithin: opts.UsableWithin,
		tunnelRate:   ratelimit.New(opts.NewTunnelRate, nil),
		reapTimer:    time.After,
		now:          opts.Now,
		busy:         opts.Busy,
		// godbus delivers out of order once a channel is full: keep
		// plenty of room so the backend's signals stay in sequence.
		sigs:      make(chan *dbus.Signal, 1024),
		emit:      connEmitter{opts.Conn},
		sessions:  map[dbus.ObjectPath]*session{},
		byToken:   map[string]*session{},
		byBackend: map[string]*session{},
		pending:   map[string]*pendingStart{},
		procs:     map[string]Process{},
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.cleanup == nil {
		m.cleanup = func(uint32) {}
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.busy == nil {
		m.busy = func() func() { return func() {} }
	}
	if m.startTO <= 0 {
		m.startTO = 15 * time.Second
	}
	if m.callTO <= 0 {
		m.callTO = 5 * time.Second
	}
	if m.stopTO <= 0 {
		m.stopTO = 5 * time.Second
	}
	if m.restartDelay <= 0 {
		m.restartDelay = 3 * time.Second
	}
	if m.maxPerUser <= 0 {
		m.maxPerUser = DefaultMaxSessionsPerUser
	}
	if m.usableWithin <= 0 {
		m.usableWithin = DefaultUsableWithin
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	// Backends send their signals unicast to us, so no match rule is needed
	// for them; NameOwnerChanged tells when a backend's last signal has
	// been delivered.
	if err := m.conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged")); err != nil {
		return nil, fmt.Errorf("sessionmgr: subscribe to NameOwnerChanged: %w", err)
	}
	m.conn.Signal(m.sigs)
	m.wg.Add(1)
	go m.signalLoop()
	return m, nil
}

// Close disconnects every session (each backend is asked to disconnect and
// killed if it does not exit in time), waits for the backends to be reaped
// and stops the signal goroutine.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	var all []*session
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stopSession(ctx, s)
		}()
	}
	wg.Wait()
	// Backends still starting (not yet sessions) are killed outright.
	m.mu.Lock()
	for _, p := range m.procs {
		p.Kill()
	}
	m.mu.Unlock()
	// The launcher's spare backend (ExecLauncher.Spare) goes too.
	if c, ok := m.launcher.(io.Closer); ok {
		_ = c.Close()
	}
	m.cancel()
	m.conn.RemoveSignal(m.sigs)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sessionmgr close: %w", ctx.Err())
	}
}

func (m *Manager) emitter() Emitter {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.emit
}

func (m *Manager) logf(level slog.Level, msg string, args ...any) {
	m.log.Log(context.Background(), level, msg, args...)
	cat := api.LogCategoryInfo
	switch {
	case level >= slog.LevelError:
		cat = api.LogCategoryError
	case level >= slog.LevelWarn:
		cat = api.LogCategoryWarn
	case level < slog.LevelInfo:
		cat = api.LogCategoryDebug
	}
	text := msg
	for i := 0; i+1 < len(args); i += 2 {
		text += fmt.Sprintf(" %v=%v", args[i], args[i+1])
	}
	_ = m.emitter().Emit(api.PathSessions, api.InterfaceSessions, "Log",
		uint32(api.LogGroupSessionMgr), uint32(cat), text)
}

// ---- starting a session ----

// newTunnelCall is NewTunnel over the bus: starting a session is a
// control-own action for polkit. polkit is asked beside the backend's
// hand-over, registration and confirmation (against polkitd a check takes
// milliseconds: 3-4 ms here, in which the backend registers and is
// confirmed); the backend reads the profile (BackendOf), and so connects,
// only once polkit said yes, and is killed if it said no. polkit's
// refusal wins over every other reason the start fails for, as when it
// was asked first.
func (m *Manager) newTunnelCall(c *busobj.Call) (dbus.ObjectPath, error) {
	configPath := c.Args[0].(dbus.ObjectPath)
	if err := m.checkRate(c.UID); err != nil {
		return "", err
	}
	info, err := m.checkProfile(c.UID, configPath)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(c.Ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)() // Close does not wait for polkit
	auth := newAuthGate()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		auth.settle(m.requireOwn(ctx, c))
	}()
	path, err := m.start(c.Ctx, c.UID, info, configPath, api.NewSessionPath(), nil, auth)
	if err != nil {
		select {
		case <-auth.done:
			if auth.err != nil {
				return "", auth.err
			}
		case <-m.ctx.Done():
		}
	}
	return path, err
}

// authGate is a NewTunnel caller's polkit answer as it comes: the
// backend registers and is confirmed meanwhile, but reads the profile
// (BackendOf) only once done is closed with err nil.
type authGate struct {
	done chan struct{}
	err  error // set before done is closed
}

func newAuthGate() *authGate { return &authGate{done: make(chan struct{})} }

// settle records polkit's answer; once only.
func (g *authGate) settle(err error) {
	g.err = err
	close(g.done)
}

// settled says whether the answer is in, and what it is.
func (g *authGate) settled() (ok bool, err error) {
	select {
	case <-g.done:
		return true, g.err
	default:
		return false, nil
	}
}

// allows waits for the answer (or ctx) and says whether it is a yes; a
// nil gate (an automatic restart: no caller to ask about) allows.
func (g *authGate) allows(ctx context.Context) bool {
	if g == nil {
		return true
	}
	// An answer already in wins over an ended ctx (select would pick
	// either).
	if ok, err := g.settled(); ok {
		return err == nil
	}
	select {
	case <-g.done:
		return g.err == nil
	case <-ctx.Done():
		return false
	}
}

// checkRate takes one of uid's NewTunnel tokens (NewTunnelRate).
func (m *Manager) checkRate(uid uint32) error {
	if err := m.tunnelRate.Check(uid, "NewTunnel"); err != nil {
		m.log.Warn("NewTunnel refused: rate limit", "uid", uid)
		return err
	}
	return nil
}

func (m *Manager) checkProfile(uid uint32, configPath dbus.ObjectPath) (ProfileInfo, error) {
	if !configPath.IsValid() || !api.IsChildPath(api.PathConfiguration, configPath) {
		return ProfileInfo{}, errRequest(fmt.Sprintf("Invalid configuration path %q", configPath))
	}
	return m.profiles.UseProfile(configPath, uid)
}

// NewTunnel starts a backend for the profile at configPath on behalf of
// uid and returns the new session's path once the session object exists.
// A user over NewTunnelRate is refused.
func (m *Manager) NewTunnel(uid uint32, configPath dbus.ObjectPath) (dbus.ObjectPath, error) {
	if err := m.checkRate(uid); err != nil {
		return "", err
	}
	return m.newTunnel(context.Background(), uid, configPath)
}

// newTunnel is NewTunnel for a caller whose leaving (ctx cancelled, as
// busobj does when the caller's connection leaves the bus) ends the start:
// its backend is killed if it has not registered yet.
func (m *Manager) newTunnel(caller context.Context, uid uint32, configPath dbus.ObjectPath) (dbus.ObjectPath, error) {
	info, err := m.checkProfile(uid, configPath)
	if err != nil {
		return "", err
	}
	return m.start(caller, uid, info, configPath, api.NewSessionPath(), nil, nil)
}

// start launches a backend and makes the session object at path. With
// prev (an automatic restart) the new session takes over prev's path,
// owner, ACL and settings and replaces it without SESS_CREATED. With
// auth (the caller's polkit answer, as it comes), the backend is
// confirmed while polkit is asked, but it may read the profile
// (BackendOf) only after the yes, and the session exists only then; a
// refusal ends the start (the backend is killed) with that error. The
// start holds Options.Busy until the session no longer needs it
// (session.notBusy) or the start fails.
func (m *Manager) start(caller context.Context, uid uint32, info ProfileInfo, configPath, path dbus.ObjectPath, prev *session, auth *authGate) (dbus.ObjectPath, error) {
	release := sync.OnceFunc(m.busy()) // the session's and the failure's
	p, err := m.startBusy(caller, uid, info, configPath, path, prev, auth, release)
	if err != nil {
		release()
	}
	return p, err
}

func (m *Manager) startBusy(caller context.Context, uid uint32, info ProfileInfo, configPath, path dbus.ObjectPath, prev *session, auth *authGate, release func()) (dbus.ObjectPath, error) {
	var err error
	token := api.NewSessionToken()
	reg := make(chan registration, 1)
	ps := &pendingStart{reg: reg, uid: uid, restart: prev != nil, config: configPath}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return "", errRequest(textCouldNotStart)
	}
	for _, s := range m.sessions {
		if prev == nil && s.configPath == configPath && s.access().visible(uid) {
			m.mu.Unlock()
			return "", errGeneric(textAlreadyRunning)
		}
	}
	// A start of the same profile by the same user still waiting for its
	// backend is a running session too: two concurrent NewTunnel calls
	// must not start two backends.
	for _, p := range m.pending {
		if prev == nil && !p.restart && p.config == configPath && p.uid == uid {
			m.mu.Unlock()
			return "", errGeneric(textAlreadyRunning)
		}
	}
	// Checked and counted under one lock, so concurrent NewTunnel calls
	// cannot pass the cap together.
	if n := m.sessionsOfLocked(uid); prev == nil && uid != 0 && n >= m.maxPerUser {
		m.mu.Unlock()
		m.log.Warn("NewTunnel refused: session limit", "uid", uid, "sessions", n, "limit", m.maxPerUser)
		return "", errRequest(fmt.Sprintf("Too many VPN sessions for this user: %d running or starting (limit %d)", n, m.maxPerUser))
	}
	m.pending[token] = ps
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.pending, token)
		m.mu.Unlock()
	}()

	// Known before the token reaches the process: a spare backend
	// (ExecLauncher.Spare) registers at once.
	proc, err := m.launcher.Launch(token, func(p Process) {
		m.mu.Lock()
		m.procs[token] = p
		ps.proc = p
		m.mu.Unlock()
	})
	if err != nil {
		m.mu.Lock()
		delete(m.procs, token)
		m.mu.Unlock()
		m.log.Error("start backend", "config", configPath, "err", err)
		return "", errRequest(textCouldNotStart)
	}
	m.wg.Add(1)
	go m.watch(token, proc)
	m.learnBackend(proc.Pid())

	fail := func(why string, args ...any) (dbus.ObjectPath, error) {
		m.log.Error("backend did not start: "+why, append([]any{"pid", proc.Pid(), "config", configPath}, args...)...)
		proc.Kill()
		return "", errRequest(textCouldNotStart)
	}
	timer := time.NewTimer(m.startTO)
	defer timer.Stop()
	refused := func(err error) (dbus.ObjectPath, error) {
		m.log.Info("backend ended: the caller is not authorized", "pid", proc.Pid(), "config", configPath)
		proc.Kill()
		return "", err
	}
	var r registration
	registered, expired := (<-chan registration)(reg), timer.C
	var answered <-chan struct{}
	if auth != nil {
		answered = auth.done
	}
	for registered != nil {
		select {
		case r = <-registered:
			registered, expired = nil, nil
		case <-answered:
			if auth.err != nil {
				return refused(auth.err)
			}
			answered = nil
		case <-proc.Done():
			return fail("process exited before registering", "exit", proc.ExitReason())
		case <-expired:
			return fail("no registration request in time", "timeout", m.startTO)
		case <-m.ctx.Done():
			return fail("shutting down")
		case <-caller.Done():
			return fail("the caller left before the backend was confirmed")
		}
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.callTO)
	defer cancel()

	s := &session{
		path:              path,
		token:             token,
		configPath:        configPath,
		created:           time.Now(),
		proc:              proc,
		backend:           r.sender,
		busName:           r.busName,
		backendPID:        uint32(r.pid),
		gone:              make(chan struct{}),
		busGone:           make(chan struct{}),
		busy:              release,
		owner:             uid,
		startedBy:         uid,
		restrictLogAccess: true,
		logVerbosity:      api.MaxLogLevel,
		autoRestart:       info.AutoRestart,
		auth:              auth,
	}
	if prev != nil {
		prev.mu.Lock()
		s.created, s.owner, s.acl, s.publicAccess = prev.created, prev.owner, slices.Clone(prev.acl), prev.publicAccess
		s.restrictLogAccess, s.logVerbosity, s.dco, s.dcoSet = prev.restrictLogAccess, prev.logVerbosity, prev.dco, prev.dcoSet
		s.restarts, s.startedBy = prev.restarts, prev.startedBy
		prev.mu.Unlock()
	} else if info.TransferOwnerSession && info.Owner != uid {
		// The profile owner owns the session; the starting user may
		// use it and read its log (spec §5.3).
		s.owner = info.Owner
		s.acl = []uint32{uid}
		s.restrictLogAccess = false
	}
	// Indexed before the confirmation so the status the backend reports
	// while reading the profile is not lost.
	m.mu.Lock()
	m.byToken[token] = s
	m.byBackend[r.sender] = s
	m.mu.Unlock()

	var name string
	err = m.backendObj(s).CallWithContext(ctx, api.InterfaceBackends+".RegistrationConfirmation", 0,
		token, path, configPath).Store(&name)
	m.noteAnswer(s, err)
	// The session exists only for an authorized caller: the backend read
	// the profile after the yes (BackendOf), and a backend that did not
	// ask for it waits for the answer here.
	if !auth.allows(caller) {
		m.backendObj(s).Call(api.InterfaceBackends+".ForceShutdown", dbus.FlagNoReplyExpected)
		if ok, aerr := auth.settled(); ok {
			return refused(aerr)
		}
		return fail("the caller left before the backend was confirmed")
	}
	if err != nil {
		m.backendObj(s).Call(api.InterfaceBackends+".ForceShutdown", dbus.FlagNoReplyExpected)
		fail("registration confirmation failed", "err", err)
		// The backend's reason (a profile or override it refused) is
		// what the user needs to read; its text is the backend's own.
		if why := api.ErrorText(err); why != "" && api.IsDomain(err, api.DomainClient) {
			return "", errRequest(textCouldNotStart + ": " + why)
		}
		return "", errRequest(textCouldNotStart)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-proc.Done():
		return fail("process exited during registration", "exit", proc.ExitReason())
	default:
	}
	if m.closed {
		return fail("shutting down")
	}
	s.configName = name
	if prev != nil {
		if m.sessions[path] != prev {
			return fail("the session was closed while restarting")
		}
		if m.objects != nil {
			m.objects.unexportSession(prev)
		}
	}
	if m.objects != nil {
		if err := m.objects.exportSession(s); err != nil {
			return fail("export session object", "err", err)
		}
	}
	m.sessions[path] = s
	s.mu.Lock()
	if s.busy != nil { // not connected nor waiting for the user yet
		s.busyTimer = time.AfterFunc(busyFor, s.notBusy)
	}
	s.mu.Unlock()
	m.wg.Add(1)
	go m.reapUnusable(s, m.reapTimer(m.usableWithin))
	if prev != nil {
		prev.closeGone()
		m.log.Info("session backend restarted", "session", path, "backend_pid", r.pid, "restarts", s.restarts)
		return path, nil
	}
	_ = m.emit.Emit(api.PathSessions, api.InterfaceSessions, "SessionManagerEvent",
		path, uint16(api.SessionEventCreated), s.owner)
	m.log.Info("session created", "session", path, "config", configPath, "name", name, "owner", s.owner, "started_by", uid, "backend_pid", r.pid)
	return path, nil
}

// sessionsOfLocked counts the sessions uid started that run or are being
// started (automatic restarts replace a counted session); m.mu is held.
func (m *Manager) sessionsOfLocked(uid uint32) int {
	n := 0
	for _, s := range m.sessions {
		if s.startedBy == uid {
			n++
		}
	}
	for _, ps := range m.pending {
		if ps.uid == uid && !ps.restart {
			n++
		}
	}
	return n
}

// reapUnusable ends session s when the bound fires before s was ever
// connected or waiting for the user: a session nobody drives further (a
// front-end that called NewTunnel and left, a server that never answers)
// must not hold a backend and a slot of its user's cap for ever.
func (m *Manager) reapUnusable(s *session, bound <-chan time.Time) {
	defer m.wg.Done()
	select {
	case <-bound:
	case <-s.gone:
		return
	case <-m.ctx.Done():
		return
	}
	s.mu.Lock()
	reap := !s.usable && !s.stopping
	if reap {
		s.reaped = true
	}
	s.mu.Unlock()
	if m.reapDecided != nil {
		m.reapDecided(s.path, reap)
	}
	if !reap {
		return
	}
	m.log.Warn("ending a session that never connected nor waited for the user", "session", s.path, "within", m.usableWithin, "backend_pid", s.backendPID)
	m.stopSession(m.ctx, s)
}

// usableStatus: a session in one of these states is connected or waits
// for the user, so reapUnusable leaves it alone.
func usableStatus(minor api.StatusMinor) bool {
	switch minor {
	case api.StatusMinorConnConnected, api.StatusMinorCfgRequireUser, api.StatusMinorConnAuthFailed,
		api.StatusMinorSessAuthUserPass, api.StatusMinorSessAuthChallenge, api.StatusMinorSessAuthURL:
		return true
	}
	return false
}

// registrationRequest verifies a RegistrationRequest for a pending start
// off the signal goroutine and passes it on only if it holds.
func (m *Manager) registrationRequest(token string, r registration) {
	m.mu.Lock()
	ps := m.pending[token]
	if ps == nil || ps.proc == nil {
		m.mu.Unlock()
		m.log.Warn("RegistrationRequest with an unknown token ignored", "sender", r.sender, "pid", r.pid)
		return
	}
	if int(r.pid) != ps.proc.Pid() || ps.verifying >= maxVerifying {
		ps.refused++
		m.mu.Unlock()
		m.log.Warn("RegistrationRequest ignored: not from the started backend", "sender", r.sender, "pid", r.pid)
		return
	}
	ps.verifying++
	proc := ps.proc
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, m.callTO)
		err := m.verifyRegistration(ctx, r, proc)
		cancel()
		m.mu.Lock()
		ps.verifying--
		if err != nil {
			ps.refused++
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("RegistrationRequest refused", "sender", r.sender, "pid", r.pid, "err", err)
			return
		}
		select {
		case ps.reg <- r:
		default: // the backend registered already
		}
	}()
}

// verifyRegistration checks, with what the bus says about the sender, that
// the RegistrationRequest came from the process we started, running as
// the backend user, and that it owns the bus name it claims.
func (m *Manager) verifyRegistration(ctx context.Context, r registration, proc Process) error {
	if int(r.pid) != proc.Pid() {
		return fmt.Errorf("registration names pid %d, started %d", r.pid, proc.Pid())
	}
	if r.busName != api.BackendBusName(uint32(r.pid)) {
		return fmt.Errorf("registration names bus name %q for pid %d", r.busName, r.pid)
	}
	// Both questions at once, answered from busobj's caches when the bus
	// was asked already (the backend's calls to the log service and netcfg
	// before it registers): registration is on every session start's path.
	lk := m.lookups()
	var owner string
	var uid, pid uint32
	var ownerErr, credsErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		owner, ownerErr = lk.NameOwner(ctx, r.busName)
	}()
	uid, pid, credsErr = lk.Credentials(ctx, r.sender)
	<-done
	if ownerErr != nil {
		return ownerErr
	}
	if owner != r.sender {
		return fmt.Errorf("%s is owned by %s, not by the sender %s", r.busName, owner, r.sender)
	}
	if credsErr != nil {
		return credsErr
	}
	if int(pid) != proc.Pid() {
		return fmt.Errorf("sender %s is pid %d, started %d", r.sender, pid, proc.Pid())
	}
	if l, ok := m.launcher.(*ExecLauncher); ok && l.User != nil && uid != l.User.UID {
		return fmt.Errorf("sender %s runs as uid %d, not the backend user %d", r.sender, uid, l.User.UID)
	}
	return nil
}

// learnBackend asks, beside the token's hand-over, who owns the started
// backend's bus name. A spare owns it already, so the answer (and who that
// connection is, which busobj's NameOwner then learns in the background)
// is in busobj's caches before the backend's first call (Attach) and its
// RegistrationRequest arrive: verifying them asks the bus nothing, a
// round trip less on every session start. A backend started now owns no
// name yet; the cache then follows its NameOwnerChanged.
func (m *Manager) learnBackend(pid int) {
	lk, ok := m.lookups().(*busobj.Server)
	if !ok { // asking the bus directly caches nothing
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, m.callTO)
		defer cancel()
		_, _ = lk.NameOwner(ctx, api.BackendBusName(uint32(pid))) // a failure: verification asks again
	}()
}

// busLookups answers who owns a bus name and who a connection is: busobj's
// server (cached, kept current by NameOwnerChanged) once the manager is
// exported on one, the bus itself before.
type busLookups interface {
	NameOwner(ctx context.Context, name string) (string, error)
	Credentials(ctx context.Context, sender string) (uid, pid uint32, err error)
}

func (m *Manager) lookups() busLookups {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busLookups != nil {
		return m.busLookups
	}
	return connLookups{m.conn}
}

// connLookups asks the bus every time.
type connLookups struct{ conn *dbus.Conn }

func (c connLookups) NameOwner(ctx context.Context, name string) (string, error) {
	var owner string
	if err := c.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner); err != nil {
		return "", fmt.Errorf("owner of %s: %w", name, err)
	}
	return owner, nil
}

func (c connLookups) Credentials(ctx context.Context, sender string) (uid, pid uint32, err error) {
	var creds map[string]dbus.Variant
	if err := c.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionCredentials", 0, sender).Store(&creds); err != nil {
		return 0, 0, fmt.Errorf("credentials of %s: %w", sender, err)
	}
	pid, pidOK := creds["ProcessID"].Value().(uint32)
	uid, uidOK := creds["UnixUserID"].Value().(uint32)
	if !pidOK || !uidOK {
		return 0, 0, fmt.Errorf("credentials of %s: the bus gave no ProcessID/UnixUserID", sender)
	}
	return uid, pid, nil
}

// watch waits for a backend to exit and removes everything that belonged
// to it.
func (m *Manager) watch(token string, proc Process) {
	defer m.wg.Done()
	<-proc.Done()
	pid := uint32(proc.Pid())
	m.cleanup(pid)

	// The process is gone, but its last signals (CONN_FAILED, CONN_DONE)
	// may still be on their way: the bus announces the end of its
	// connection after them, so wait for that before removing the session.
	m.mu.Lock()
	s := m.byToken[token]
	m.mu.Unlock()
	if s != nil {
		t := time.NewTimer(busGoneTimeout)
		select {
		case <-s.busGone:
		case <-t.C:
			m.log.Warn("backend exited but its bus connection did not end", "pid", pid)
		case <-m.ctx.Done():
		}
		t.Stop()
	}

	m.mu.Lock()
	delete(m.procs, token)
	s = m.byToken[token]
	if s == nil {
		m.mu.Unlock()
		m.log.Info("backend exited before it had a session", "pid", pid, "exit", proc.ExitReason())
		return
	}
	delete(m.byToken, token)
	delete(m.byBackend, s.backend)
	exported := m.sessions[s.path] == s
	closed := m.closed
	m.mu.Unlock()
	if !exported {
		s.closeGone()
		return
	}
	s.mu.Lock()
	st := api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcStopped, Message: "Session closed"}
	restart := false
	switch {
	case s.reaped:
		st = api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcStopped,
			Message: fmt.Sprintf("Session closed: it neither connected nor asked for user input within %v", m.usableWithin)}
	case s.killed:
		st = api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcKilled,
			Message: "Session closed, killed backend client"}
	case !s.stopping:
		st = api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcKilled,
			Message: "Session closed, backend client " + proc.ExitReason()}
		if s.autoRestart && !closed {
			if !s.connectedAt.IsZero() && time.Since(s.connectedAt) > restartReset {
				s.restarts = 0
			}
			if s.restarts < maxRestarts {
				restart = true
				s.restarts++
				s.restartWait = make(chan struct{})
				st.Message = "Backend client " + proc.ExitReason() + ", restarting"
			}
		}
	}
	s.status = st
	s.mu.Unlock()
	if restart {
		m.toLogService(s.path, "StatusChange", uint32(st.Major), uint32(st.Minor), st.Message)
		m.log.Warn("backend died; restarting it", "session", s.path, "pid", pid, "exit", proc.ExitReason())
		m.wg.Add(1)
		go m.restartLater(s)
		return
	}
	m.removeSession(s, st)
	m.log.Info("session destroyed", "session", s.path, "backend_pid", pid, "exit", proc.ExitReason())
}

// removeSession removes an exported session whose backend is gone and
// announces it with its final status and SESS_DESTROYED.
func (m *Manager) removeSession(s *session, st api.Status) {
	m.mu.Lock()
	exported := m.sessions[s.path] == s
	if exported {
		delete(m.sessions, s.path)
		if m.objects != nil {
			m.objects.unexportSession(s)
		}
	}
	m.mu.Unlock()
	s.mu.Lock()
	s.status = st
	owner := s.owner
	s.mu.Unlock()
	s.closeGone()
	m.dropForwards(s)
	if exported {
		m.toLogService(s.path, "StatusChange", uint32(st.Major), uint32(st.Minor), st.Message)
		_ = m.emitter().Emit(api.PathSessions, api.InterfaceSessions, "SessionManagerEvent",
			s.path, uint16(api.SessionEventDestroyed), owner)
	}
}

// restartLater starts a dead session's backend again after the backoff
// (automatic-restart=on-failure), reusing the session path, then makes it
// ready, re-creates the log forwards and connects. Disconnect during the
// wait abandons the restart (stopSession closes restartWait).
func (m *Manager) restartLater(prev *session) {
	defer m.wg.Done()
	prev.mu.Lock()
	n, wait := prev.restarts, prev.restartWait
	owner := prev.owner
	prev.mu.Unlock()
	delay := min(maxRestartDelay, m.restartDelay<<(n-1))
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wait:
		return
	case <-m.ctx.Done():
		return
	}
	giveUp := func(why string, err error) {
		m.log.Error("automatic restart failed: "+why, "session", prev.path, "err", err)
		m.removeSession(prev, api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcKilled,
			Message: "Session closed, backend client could not be restarted"})
	}
	info, err := m.profiles.UseProfile(prev.configPath, owner)
	if err != nil {
		giveUp("profile no longer usable", err)
		return
	}
	if _, err := m.start(m.ctx, owner, info, prev.configPath, prev.path, prev, nil); err != nil {
		select {
		case <-wait: // disconnected meanwhile
			return
		default:
		}
		prev.mu.Lock()
		again := prev.restarts < maxRestarts
		if again {
			prev.restarts++
		}
		prev.mu.Unlock()
		if again {
			m.wg.Add(1)
			go m.restartLater(prev)
			return
		}
		giveUp("no more retries", err)
		return
	}
	s := m.session(prev.path)
	if s == nil {
		return
	}
	m.recreateForwards(prev, s)
	if err := m.Ready(s); err != nil {
		m.log.Warn("restarted backend is not ready; waiting for the user", "session", s.path, "err", err)
		return
	}
	if err := m.Connect(s); err != nil {
		m.log.Warn("restarted backend did not connect", "session", s.path, "err", err)
	}
}

// recreateForwards asks the log service for a proxy to the restarted
// session s for every LogForward subscriber of prev.
func (m *Manager) recreateForwards(prev, s *session) {
	if m.logs == nil {
		return
	}
	for sender, f := range prev.forwardsSnapshot() {
		ctx, cancel := m.callCtx()
		p, err := m.logs.ProxyLogEvents(ctx, sender, s.path)
		cancel()
		if err != nil {
			continue // the subscriber left meanwhile
		}
		s.mu.Lock()
		if s.forwards == nil {
			s.forwards = map[string]logForward{}
		}
		s.forwards[sender] = logForward{path: p, uid: f.uid}
		s.mu.Unlock()
	}
}

// stopSession asks the backend to disconnect, waits for it to exit and
// kills it if it does not.
func (m *Manager) stopSession(ctx context.Context, s *session) {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	if s.abandonRestart() {
		// No backend: waiting for an automatic restart. Abandon it.
		m.removeSession(s, api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcStopped, Message: "Session closed"})
		return
	}
	cctx, cancel := context.WithTimeout(ctx, m.callTO)
	err := m.backendObj(s).CallWithContext(cctx, api.InterfaceBackends+".Disconnect", 0).Err
	cancel()
	if err != nil {
		m.log.Warn("backend Disconnect", "session", s.path, "err", err)
	}
	t := time.NewTimer(m.stopTO)
	defer t.Stop()
	select {
	case <-s.gone:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	m.log.Warn("backend did not exit after Disconnect; killing it", "session", s.path, "pid", s.backendPID)
	s.proc.Kill()
	select {
	case <-s.gone:
	case <-time.After(m.stopTO):
		m.log.Error("killed backend was not reaped", "pid", s.backendPID)
	}
}

// ---- backend signals ----

func (m *Manager) signalLoop() {
	defer m.wg.Done()
	for {
		select {
		case sig, ok := <-m.sigs:
			if !ok {
				return
			}
			m.handleSignal(sig)
		case <-m.ctx.Done():
			return
		}
	}
}

func (m *Manager) handleSignal(sig *dbus.Signal) {
	if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(sig.Body) == 3 {
		name, _ := sig.Body[0].(string)
		newOwner, _ := sig.Body[2].(string)
		if name == api.ServiceLog {
			m.mu.Lock()
			m.logOwner = newOwner
			m.mu.Unlock()
		}
		if newOwner != "" {
			return
		}
		m.mu.Lock()
		s := m.byBackend[name]
		all := make([]*session, 0, len(m.sessions))
		for _, x := range m.sessions {
			all = append(all, x)
		}
		m.mu.Unlock()
		if s != nil {
			s.busGoneOnce.Do(func() { close(s.busGone) })
		}
		// A LogForward subscriber that left: its proxy is gone with it
		// (the log service drops it); forget the entry too, or every
		// connection that ever forwarded would stay in the map.
		for _, x := range all {
			x.mu.Lock()
			delete(x.forwards, name)
			x.mu.Unlock()
		}
		return
	}
	member, ok := strings.CutPrefix(sig.Name, api.InterfaceBackends+".")
	if !ok || sig.Path != api.PathBackendSession {
		return
	}
	if member == "RegistrationRequest" {
		var r registration
		var token string
		if err := dbus.Store(sig.Body, &r.busName, &token, &r.pid); err != nil {
			m.log.Warn("malformed RegistrationRequest", "sender", sig.Sender, "err", err)
			return
		}
		r.sender = sig.Sender
		m.registrationRequest(token, r)
		return
	}
	m.mu.Lock()
	s := m.byBackend[sig.Sender]
	m.mu.Unlock()
	if s == nil {
		return
	}
	em := m.emitter()
	switch member {
	case "StatusChange":
		var major, minor uint32
		var msg string
		if err := dbus.Store(sig.Body, &major, &minor, &msg); err != nil {
			m.log.Warn("malformed StatusChange", "session", s.path, "err", err)
			return
		}
		st := api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}
		s.mu.Lock()
		s.status = st
		if st.Minor == api.StatusMinorConnConnected {
			s.connectedAt = time.Now()
		}
		usable := usableStatus(st.Minor)
		if usable {
			s.usable = true
		}
		s.mu.Unlock()
		if usable {
			s.notBusy()
		}
		m.log.Info("session status", "session", s.path, "status", st.String())
		// Re-emitted to the log service only (spec §1.5): front-ends get
		// the backend's events through LogForward, so another user never
		// sees them.
		m.toLogService(s.path, "StatusChange", major, minor, msg)
	case "Log":
		// The log service receives the backend's Log itself and forwards
		// it to LogForward subscribers; last_log is the session object's
		// own log (spec §6.3).
	case "AttentionRequired":
		var typ, group uint32
		var msg string
		if err := dbus.Store(sig.Body, &typ, &group, &msg); err != nil {
			m.log.Warn("malformed AttentionRequired", "session", s.path, "err", err)
			return
		}
		s.mu.Lock()
		s.usable = true // the session waits for the user
		s.mu.Unlock()
		s.notBusy()
		_ = em.Emit(s.path, api.InterfaceSessions, "AttentionRequired", typ, group, msg)
	}
}

// ---- who is a backend (for the other services' access checks) ----

// BackendCaller reports whether c comes from one of this manager's
// backends: the connection of a registered backend (its registration was
// verified), or — before it registers — the owner of
// net.openvpn.v3.backends.be<its PID> for a PID this manager started.
func (m *Manager) BackendCaller(c *busobj.Call) bool {
	m.mu.Lock()
	_, registered := m.byBackend[c.Sender]
	started := false
	for _, p := range m.procs {
		if uint32(p.Pid()) == c.PID {
			started = true
		}
	}
	m.mu.Unlock()
	if registered {
		return true
	}
	return started && c.OwnsName(api.BackendBusName(c.PID))
}

// BackendOf reports whether c comes from the registered backend of a
// session started from the profile at configPath, by a caller polkit
// authorized: while the NewTunnel's answer is awaited it waits for it
// (or c.Ctx), so a refused caller's backend never reads the profile (a
// single-use one would be gone) nor connects.
func (m *Manager) BackendOf(c *busobj.Call, configPath dbus.ObjectPath) bool {
	m.mu.Lock()
	s := m.byBackend[c.Sender]
	m.mu.Unlock()
	return s != nil && s.configPath == configPath && s.auth.allows(c.Ctx)
}

// ---- helpers ----

// toLogService sends a session object's signal unicast to the log service
// (if there is one).
func (m *Manager) toLogService(path dbus.ObjectPath, member string, args ...any) {
	m.mu.Lock()
	owner := m.logOwner
	m.mu.Unlock()
	if owner == "" {
		ctx, cancel := m.callCtx()
		err := m.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, api.ServiceLog).Store(&owner)
		cancel()
		if err != nil {
			return
		}
		m.mu.Lock()
		m.logOwner = owner
		m.mu.Unlock()
	}
	_ = m.emitter().EmitTo(owner, path, api.InterfaceSessions, member, args...)
}

// sessionLog is a Log event of the session object itself: it becomes
// last_log and goes to the log service.
func (m *Manager) sessionLog(s *session, cat api.LogCategory, msg string) {
	m.log.Info(msg, "session", s.path)
	s.mu.Lock()
	s.lastLog = LogEvent{Group: uint32(api.LogGroupSessionMgr), Category: uint32(cat), Message: msg}
	s.mu.Unlock()
	m.toLogService(s.path, "Log", uint32(api.LogGroupSessionMgr), uint32(cat), msg)
}

func (m *Manager) backendObj(s *session) dbus.BusObject {
	return m.conn.Object(s.backend, api.PathBackendSession)
}

// session returns a live session by path.
func (m *Manager) session(path dbus.ObjectPath) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[path]
}

func (m *Manager) list() []*session {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*session, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *session) int { return a.created.Compare(b.created) })
	return out
}

type connEmitter struct{ conn *dbus.Conn }

func (e connEmitter) Emit(path dbus.ObjectPath, iface, member string, args ...any) error {
	return e.conn.Emit(path, iface+"."+member, args...)
}

func (e connEmitter) EmitTo(dest string, path dbus.ObjectPath, iface, member string, args ...any) error {
	msg := &dbus.Message{Type: dbus.TypeSignal, Flags: dbus.FlagNoReplyExpected, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(path),
		dbus.FieldInterface:   dbus.MakeVariant(iface),
		dbus.FieldMember:      dbus.MakeVariant(member),
		dbus.FieldDestination: dbus.MakeVariant(dest),
	}, Body: args}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return e.conn.Send(msg, nil).Err
}
