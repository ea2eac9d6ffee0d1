// Package backend is the per-session process (the program ovpn3-backend):
// it owns net.openvpn.v3.backends.be<PID>, registers with the
// session manager, reads its profile from the configuration manager, and on
// Connect runs the OpenVPN engine with a TUN device obtained from netcfg. It
// reports the engine's progress as StatusChange and Log signals sent only
// to the session manager and the log service (it Attaches to the log
// service and assigns its session there, so LogForward subscribers get its
// events), and exits after Disconnect, after a fatal engine error, or when
// the session manager disappears.
//
// The user-input queue (userinput.go, spec §6.5) holds typed slots for
// what the profile or the server asks: username/password, the static
// challenge response, the CRV1 dynamic challenge answer (queued when the
// server's AUTH_FAILED carries one), the private-key passphrase (when the
// engine reports the key locked) and HTTP proxy credentials (asked again
// when the proxy refuses them). Ready fails with net.openvpn.v3.error.ready
// while a slot is empty; AUTH_FAILED without a challenge reports
// CONN_AUTH_FAILED with the server's reason and asks for the credentials
// again, keeping the session. A server holding the login with
// AUTH_PENDING (authpending.go) is surfaced as upstream does: WEB_AUTH and
// OPEN_URL as SESSION/SESS_AUTH_URL with the URL (Ready: "Pending web
// authentication"), CR_TEXT as a CHALLENGE_AUTH_PENDING slot whose value
// goes to the server at once.
//
// Pause stops the engine and with it the TUN device (nothing can flow or
// leak through a device nobody serves); the session, its credentials and
// its status CONN_PAUSED remain until Resume connects again. Restart
// reconnects with a fresh engine.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// Options configure Run.
type Options struct {
	// Address of the bus; "" is the system bus (DBUS_SYSTEM_BUS_ADDRESS).
	Address string
	// Logger receives the backend's own log (the helper copies the
	// process's stderr into its log); records are also sent as Log
	// signals to the session manager.
	Logger *slog.Logger
	// Version is announced to the server (IV_VER / IV_GUI_VER).
	Version string
	// CallTimeout bounds calls to other services (default 10 s).
	CallTimeout time.Duration
	// StopTimeout bounds the wait for the engine to stop (default 5 s).
	StopTimeout time.Duration
	// Preconnect: begin the connection when the profile is evaluated at
	// registration and hold it before the credentials go out, for the
	// Connect to adopt (preconnect.go).
	Preconnect bool
	// Online, if set, is called right after every CONN_CONNECTED status
	// was sent, on the engine's goroutine (it must not block): the data
	// plane moves packets from then on (the program gives the Go
	// scheduler its CPUs back there: process.Parallel).
	Online func()
	// Connected, if set, is called settleDelay after every CONN_CONNECTED
	// status was sent, on a timer's goroutine: the process settles its
	// memory there (the handshake's garbage is gone).
	Connected func()
}

// TokenSource returns the session token. A spare backend's
// (sessionmgr.ExecLauncher.Spare) waits until a session claims it; ctx
// ends the wait.
type TokenSource func(ctx context.Context) (string, error)

// Token is the TokenSource of a token known at once.
func Token(token string) TokenSource {
	return func(context.Context) (string, error) { return token, nil }
}

// Run is the whole life of a backend process. It returns when the session
// is over: nil after Disconnect or ForceShutdown, an error when the backend
// could not start or the engine failed.
//
// Everything that needs no session (the bus connection, the backend's bus
// name, finding the session manager and the log service) happens before
// the token is read, so a spare backend has it done when it is claimed.
func Run(ctx context.Context, token TokenSource, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 5 * time.Second
	}
	// busobj logs to the plain logger: its records must not turn into
	// signals sent through busobj again.
	srv, err := busobj.Connect(ctx, opts.Address, opts.Logger)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	defer srv.Close()

	b := &Backend{
		srv:      srv,
		pid:      uint32(os.Getpid()),
		opts:     opts,
		exit:     make(chan error, 1),
		logLevel: 3,
		status:   api.Status{},
	}
	b.log = slog.New(newSignalHandler(opts.Logger.Handler(), b, api.LogGroupBackendProc))
	b.engineLog = slog.New(newSignalHandler(opts.Logger.Handler(), b, api.LogGroupClient))
	b.busName = api.BackendBusName(b.pid)

	if err := srv.RequestName(b.busName); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
	manager, err := srv.NameOwner(cctx, api.ServiceSessions)
	cancel()
	if err != nil {
		return fmt.Errorf("backend: no session manager: %w", err)
	}
	// Without its session manager nobody can reach or stop this process:
	// end with it (a spare stops waiting for its token).
	wctx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	stopWatch := srv.WatchNames(func(name, oldOwner, newOwner string) {
		if name == manager && newOwner == "" {
			b.requestExit(errors.New("session manager disappeared"))
			stopWait()
		}
	})
	defer stopWatch()
	stopAfter := context.AfterFunc(srv.Conn().Context(), stopWait)
	defer stopAfter()
	logOwner := b.logServiceOwner(ctx)
	// Built while waiting (exported only once the token is known): the
	// token's arrival is on the session start's path.
	iface := b.iface()

	tok, err := token(wctx)
	if err == nil && tok == "" {
		err = errors.New("empty session token")
	}
	if err != nil {
		select {
		case why := <-b.exit: // the reason the wait ended
			err = why
		default:
		}
		return fmt.Errorf("backend: %w", err)
	}
	b.token = tok
	b.mu.Lock()
	b.manager = manager
	b.mu.Unlock()
	// The Attach goes out right behind the RegistrationRequest, not a
	// round trip before it, nor in front of it (the session manager works
	// on the request meanwhile): RegistrationConfirmation waits for its
	// answer.
	attach, attached := b.attachLog(ctx, logOwner)
	b.attached = attached
	// Exported once the token is known: RegistrationConfirmation checks it.
	if err := srv.Export(api.PathBackendSession, iface); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if err := srv.EmitTo(manager, api.PathBackendSession, api.InterfaceBackends, "RegistrationRequest",
		b.busName, tok, int32(b.pid)); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	attach()
	b.attached()
	opts.Logger.Info("backend waiting for registration", "pid", b.pid, "bus_name", b.busName)

	var result error
	select {
	case result = <-b.exit:
	case <-ctx.Done():
		result = nil
	case <-srv.Conn().Context().Done():
		result = errors.New("bus connection closed")
	}
	b.teardown(context.Background())
	if result != nil {
		opts.Logger.Error("backend exiting", "err", result)
	} else {
		opts.Logger.Info("backend exiting")
	}
	return result
}

// Backend is the state of one backend process.
type Backend struct {
	srv       *busobj.Server
	token     string
	pid       uint32
	busName   string
	opts      Options
	log       *slog.Logger // backend messages (group BACKENDPROC)
	engineLog *slog.Logger // engine messages (group CLIENT)
	exit      chan error

	teardownOnce sync.Once
	attached     func() // waits for the log service's answer to Attach (attachLog)

	mu          sync.Mutex
	manager     string // unique name of the session manager
	logService  string // unique name of net.openvpn.v3.log if it is another connection
	paused      bool
	pausing     bool
	registered  bool
	sessionPath dbus.ObjectPath
	configPath  dbus.ObjectPath
	configName  string
	prof        *profile.Profile
	creds       engine.Credentials
	inputs      *inputQueue
	logLevel    uint32
	ovLogLevel  uint32       // log-level override; 0 none
	netOv       netOverrides // overrides applied to the tunnel's network configuration
	dco         bool
	dcoOn       bool                    // the engine was given DCO (chooseDataPath)
	dcoDev      *netcfgclient.DCODevice // the offloaded connection's device
	status      api.Status
	lastLog     logLine
	state       engine.State
	hasState    bool
	client      *engine.Client
	runCancel   context.CancelFunc
	runDone     chan struct{}
	runEnded    chan struct{} // closed when the engine's Run returned (run then tears down)
	tun         *netcfgclient.Tun
	early       *earlyTun                               // the TUN device netcfg creates during the handshake (earlytun.go)
	settle      *time.Timer                             // runs Options.Connected after CONN_CONNECTED (settleLater)
	afterFunc   func(time.Duration, func()) *time.Timer // time.AfterFunc; tests hold the call
	prepared    *engine.Prepared                        // the profile's TLS configuration, built at registration
	warmStop    func()                                  // ends the handshake warm-up and waits for it (warm.go)
	evalDone    chan struct{}                           // closed when the profile's evaluation behind the registration ended (evaluate.go)
	evalHook    func()                                  // tests: runs first in that evaluation
	pre         *preconn                                // the connection begun at registration (preconnect.go)
	devicePath  dbus.ObjectPath
	deviceName  string
	stopping    bool
	restarting  bool
	// proxyRetry: the engine ended because the HTTP proxy wants other
	// credentials; the session stays and asks for them again.
	proxyRetry bool
}

type logLine struct {
	group, category uint32
	message         string
}

func (b *Backend) requestExit(err error) {
	select {
	case b.exit <- err:
	default:
	}
}

func (b *Backend) managerName() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.manager
}

// setStatus records a status and sends StatusChange to the session manager.
func (b *Backend) setStatus(major api.StatusMajor, minor api.StatusMinor, msg string) {
	b.mu.Lock()
	b.status = api.Status{Major: major, Minor: minor, Message: msg}
	dest := b.manager
	b.mu.Unlock()
	b.opts.Logger.Info("status", "status", api.Status{Major: major, Minor: minor, Message: msg}.String())
	if dest == "" {
		return
	}
	if err := b.emit("StatusChange", uint32(major), uint32(minor), msg); err != nil {
		b.opts.Logger.Warn("send StatusChange", "err", err)
	}
}

// emit sends a signal unicast to the session manager and, when it is a
// different connection, to the log service (spec §1.5): nobody else may
// see a backend's signals.
func (b *Backend) emit(member string, args ...any) error {
	b.mu.Lock()
	dests := []string{b.manager}
	if b.logService != "" && b.logService != b.manager {
		dests = append(dests, b.logService)
	}
	b.mu.Unlock()
	var errs []error
	for _, d := range dests {
		if d == "" {
			continue
		}
		errs = append(errs, b.srv.EmitTo(d, api.PathBackendSession, api.InterfaceBackends, member, args...))
	}
	return errors.Join(errs...)
}

// logServiceOwner finds net.openvpn.v3.log; without a log service the
// backend still works (front-ends then get no forwarded events).
func (b *Backend) logServiceOwner(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	owner, err := b.srv.NameOwner(ctx, api.ServiceLog)
	if err != nil {
		b.opts.Logger.Warn("no log service", "err", err)
		return ""
	}
	return owner
}

// attachLog attaches to the log service at owner for the backends
// interface, as upstream's client does. The log service accepts it only
// from a backend the session manager started for a session, so it waits
// for the token. send sends the call; wait (which sends it first if send
// was not called) waits for its answer and records the log service. Both
// are safe to call more than once.
func (b *Backend) attachLog(ctx context.Context, owner string) (send, wait func()) {
	if owner == "" {
		return func() {}, func() {}
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	var call *dbus.Call
	send = sync.OnceFunc(func() {
		call = b.srv.Conn().Object(api.ServiceLog, api.PathLog).GoWithContext(ctx, api.InterfaceLog+".Attach", 0, nil, api.InterfaceBackends)
	})
	return send, sync.OnceFunc(func() {
		defer cancel()
		send()
		<-call.Done
		if call.Err != nil {
			b.opts.Logger.Warn("attach to the log service", "err", call.Err)
			return
		}
		b.mu.Lock()
		b.logService = owner
		b.mu.Unlock()
	})
}

// assignLogSession tells the log service which session this backend's
// events belong to, so LogForward proxies can find them. The call goes out
// at once; the returned func waits for its answer (and logs a failure).
func (b *Backend) assignLogSession(ctx context.Context, session dbus.ObjectPath) (wait func()) {
	b.mu.Lock()
	attached := b.logService != ""
	b.mu.Unlock()
	if !attached {
		return func() {}
	}
	call := b.srv.Conn().Object(api.ServiceLog, api.PathLog).GoWithContext(ctx, api.InterfaceLog+".AssignSession", 0, nil,
		session, api.InterfaceBackends)
	return func() {
		<-call.Done
		if call.Err != nil {
			b.opts.Logger.Warn("assign the session to the log service", "err", call.Err)
		}
	}
}

// emitLog sends one Log signal to the session manager if the level allows.
func (b *Backend) emitLog(group api.LogGroup, cat api.LogCategory, msg string) {
	b.mu.Lock()
	level := b.logLevel
	if cat.MinLogLevel() <= level {
		b.lastLog = logLine{uint32(group), uint32(cat), msg}
	}
	b.mu.Unlock()
	if cat.MinLogLevel() > level || b.srv == nil {
		return
	}
	_ = b.emit("Log", uint32(group), uint32(cat), b.token, msg)
}

// settleDelay is how long after CONN_CONNECTED the Connected hook waits:
// its full collection keeps both cores of a small machine busy for
// milliseconds, and right after CONN_CONNECTED the session manager relays
// it and the front-end's session-start exits (the end of the connect as
// the user sees it); a fifth of a second later that is over.
const settleDelay = 200 * time.Millisecond

// settleLater runs Options.Connected settleDelay from now, once per
// connection (a newer CONN_CONNECTED restarts the wait); teardown stops it.
func (b *Backend) settleLater() {
	if b.opts.Connected == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping {
		return
	}
	if b.settle != nil {
		b.settle.Stop()
	}
	after := b.afterFunc
	if after == nil {
		after = time.AfterFunc
	}
	b.settle = after(settleDelay, b.opts.Connected)
}

// teardown stops the engine, removes the TUN device and reports CONN_DONE,
// once (Disconnect does it before replying, Run again on the way out).
func (b *Backend) teardown(ctx context.Context) {
	b.teardownOnce.Do(func() {
		b.waitEvaluated() // it may start a held connection or a warm-up
		b.stopWarm()
		b.closePreconn(ctx, "the session ends")
		b.mu.Lock()
		if b.settle != nil {
			b.settle.Stop()
		}
		b.mu.Unlock()
		b.stopEngine(ctx)
		b.mu.Lock()
		done := b.status.Major == api.StatusMajorConnection && b.status.Minor == api.StatusMinorConnDone
		b.mu.Unlock()
		if !done { // keep the reason of a session that ended by itself
			b.setStatus(api.StatusMajorConnection, api.StatusMinorConnDone, "")
		}
	})
}

// stopEngine cancels a running engine, waits for it and closes the TUN
// device (which destroys the netcfg device object).
func (b *Backend) stopEngine(ctx context.Context) {
	b.mu.Lock()
	b.stopping = true
	cancel, done := b.runCancel, b.runDone
	b.mu.Unlock()
	if cancel != nil {
		cancel()
		t := time.NewTimer(b.opts.StopTimeout)
		select {
		case <-done:
		case <-t.C:
			b.opts.Logger.Warn("engine did not stop in time")
		case <-ctx.Done():
		}
		t.Stop()
	}
	b.closeTun()
}

func (b *Backend) closeTun() {
	b.closeEarlyTun()
	b.mu.Lock()
	tun, dev := b.tun, b.dcoDev
	b.tun, b.dcoDev = nil, nil
	b.mu.Unlock()
	if dev != nil {
		if err := dev.Close(); err != nil {
			b.opts.Logger.Warn("close DCO device", "err", err)
		}
	}
	if tun != nil {
		if err := tun.Close(); err != nil {
			b.opts.Logger.Warn("close TUN device", "err", err)
		}
	}
}
