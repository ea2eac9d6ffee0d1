package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// connect starts the engine in a goroutine owned by the backend; the
// goroutine ends when the engine returns (Disconnect cancels it).
func (b *Backend) connect() error {
	b.mu.Lock()
	prof, pre := b.prof, b.prepared
	running := b.runCancel != nil
	stopping := b.stopping
	ended, done := b.runEnded, b.runDone
	b.mu.Unlock()
	if running && isClosed(ended) {
		// The engine returned and run is still tearing its device down
		// (closeTun: a D-Bus round trip for the early device). A Connect
		// now, such as a dynamic challenge's answer sent the moment the
		// AUTH_FAILED arrived, is for a new engine: wait for run to end
		// rather than take the session for connected.
		<-done
		b.mu.Lock()
		running, stopping = b.runCancel != nil, b.stopping
		b.mu.Unlock()
	}
	switch {
	case prof == nil:
		return errClient(textNotInitialized)
	case stopping:
		return errClient("Backend service is shutting down")
	case running:
		return nil // already connecting or connected
	}
	q := b.queue()
	if q.pending() {
		return errClient(textInputMissing)
	}
	dco := b.dataPath()
	creds := q.credentials()
	q.challengeUsed()
	q.dropAuthPending() // a CR_TEXT answer belongs to the handshake that asked
	// The connection begun at registration, if any (preconnect.go).
	if b.adopt(creds, q.proxyCredentials(), dco) {
		return nil
	}
	client, err := engine.New(b.engineConfig(prof, pre, creds, q.proxyCredentials(), dco))
	if errors.Is(err, engine.ErrKeyPassphraseWrong) || errors.Is(err, engine.ErrKeyPassphraseNeeded) {
		// Ask again; the session stays (CONN_FAILED would end it).
		q.resetPassphrase()
		b.announceInput()
		return errClient("PEM_PASSWORD_FAIL: " + err.Error())
	}
	if err != nil {
		b.setStatus(api.StatusMajorConnection, api.StatusMinorCfgError, sanitize(err.Error()))
		return errClient("Configuration parsing failed: " + err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, ended = make(chan struct{}), make(chan struct{})
	b.mu.Lock()
	b.client, b.runCancel, b.runDone, b.runEnded = client, cancel, done, ended
	b.hasState = false
	b.paused = false
	b.mu.Unlock()
	b.log.Info("connecting", "config", b.configPath)
	if dco == nil {
		b.prepareTun() // while the handshake runs
	}
	go b.run(func() error { return client.Run(ctx) }, done, ended)
	return nil
}

// engineConfig is the Connect's engine configuration: the profile with
// what was prepared from it at registration.
func (b *Backend) engineConfig(prof *profile.Profile, pre *engine.Prepared, creds, proxy engine.Credentials, dco engine.DCO) engine.Config {
	return engine.Config{
		Profile:          prof,
		Credentials:      creds,
		ProxyCredentials: proxy,
		Tun:              tunProvider{b},
		DCO:              dco,
		Events:           events{b}, // also engine.AuthEvents (authpending.go)
		Logger:           b.engineLog,
		Version:          b.opts.Version,
		Prepared:         pre,
	}
}

// isClosed says whether c (nil: never) is closed.
func isClosed(c chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// run drives one engine until it returns (runEngine: its Run, or the wait
// for an adopted one's) and decides what its end means for the process: a
// fatal failure ends the backend.
func (b *Backend) run(runEngine func() error, done, ended chan struct{}) {
	defer close(done)
	err := runEngine()
	close(ended)
	b.closeTun()

	b.mu.Lock()
	stopping, restarting, pausing := b.stopping, b.restarting, b.pausing
	state, hasState := b.state, b.hasState
	if !stopping && !restarting && !pausing {
		b.runCancel, b.runDone, b.runEnded = nil, nil, nil
	}
	b.mu.Unlock()
	if stopping || restarting || pausing {
		return
	}
	b.mu.Lock()
	proxyRetry := b.proxyRetry
	b.proxyRetry = false
	b.mu.Unlock()
	if hasState && state == engine.StateCredentialsNeeded {
		b.credentialsNeeded()
		return
	}
	if hasState && state == engine.StateAuthFailed || proxyRetry {
		// The session stays (as upstream): the front-end reads the status
		// and disconnects, or provides new credentials (or the answer to
		// a dynamic challenge, queued by events.State) and connects again.
		return
	}
	if hasState && state == engine.StateDone {
		// inactive or session-timeout: CONN_DONE with the reason was
		// reported; the session ends without a failure.
		b.requestExit(nil)
		return
	}
	reason := "Client disconnected by server"
	if err != nil {
		reason = err.Error()
	}
	if !hasState || state != engine.StateFailed {
		b.setStatus(api.StatusMajorConnection, api.StatusMinorConnFailed, sanitize(reason))
	}
	b.requestExit(fmt.Errorf("connection failed: %s", reason))
}

// restart stops a running engine and starts a new one.
func (b *Backend) restart() error {
	b.mu.Lock()
	if b.prof == nil {
		b.mu.Unlock()
		return errClient(textNotInitialized)
	}
	cancel, done := b.runCancel, b.runDone
	b.restarting = true
	b.mu.Unlock()
	b.setStatus(api.StatusMajorConnection, api.StatusMinorConnReconnecting, "")
	if cancel != nil {
		cancel()
		<-done
	}
	b.closeTun()
	b.mu.Lock()
	b.restarting = false
	b.runCancel, b.runDone, b.runEnded, b.client = nil, nil, nil, nil
	b.mu.Unlock()
	return b.connect()
}

// pause stops the engine (the TUN device goes with it, so no traffic
// flows and nothing leaks past a half-configured device) and keeps the
// session, its credentials and its status CONN_PAUSED until Resume.
func (b *Backend) pause(ctx context.Context, reason string) error {
	b.mu.Lock()
	switch {
	case b.prof == nil:
		b.mu.Unlock()
		return errClient(textNotInitialized)
	case b.paused || b.pausing:
		b.mu.Unlock()
		return errClient("Connection is already paused")
	case b.runCancel == nil:
		b.mu.Unlock()
		return errClient("Connection is not active")
	}
	b.pausing = true
	cancel, done := b.runCancel, b.runDone
	b.mu.Unlock()
	b.setStatus(api.StatusMajorConnection, api.StatusMinorConnPausing, "Reason: "+sanitize(reason))
	cancel()
	t := time.NewTimer(b.opts.StopTimeout)
	select {
	case <-done:
	case <-t.C:
		b.opts.Logger.Warn("engine did not stop in time for pause")
	case <-ctx.Done():
	}
	t.Stop()
	b.closeTun()
	b.mu.Lock()
	b.pausing, b.paused = false, true
	b.runCancel, b.runDone, b.runEnded, b.client = nil, nil, nil, nil
	b.devicePath, b.deviceName = "", ""
	b.mu.Unlock()
	b.setStatus(api.StatusMajorConnection, api.StatusMinorConnPaused, "")
	return nil
}

// resume reconnects a paused session with the credentials it had.
func (b *Backend) resume() error {
	b.mu.Lock()
	paused := b.paused
	b.mu.Unlock()
	if !paused {
		return errClient("Connection is not paused")
	}
	b.setStatus(api.StatusMajorConnection, api.StatusMinorConnResuming, "")
	if err := b.connect(); err != nil {
		return err
	}
	return nil
}

func (b *Backend) connectedLocked() bool {
	return b.client != nil && b.hasState && b.state == engine.StateConnected
}

// events maps engine states to StatusChange signals.
type events struct{ b *Backend }

func (e events) State(s engine.State, detail string) {
	b := e.b
	b.mu.Lock()
	b.state, b.hasState = s, true
	quiet := b.pausing || b.restarting
	b.mu.Unlock()
	if s != engine.StateWaitingForServer {
		// The handshake a CR_TEXT slot belonged to is over.
		b.queue().dropAuthPending()
	}
	detail = sanitize(detail)
	conn := api.StatusMajorConnection
	if quiet && s == engine.StateDisconnected {
		return // pausing/restarting report their own states
	}
	switch s {
	case engine.StateConnecting:
		b.setStatus(conn, api.StatusMinorConnConnecting, detail)
	case engine.StateWaitingForServer:
		b.log.Info("waiting for the server", "detail", detail)
	case engine.StateConnected:
		b.mu.Lock()
		if b.dcoOn {
			b.dco = b.dcoDev != nil // what this connection really uses
		}
		b.mu.Unlock()
		b.setStatus(conn, api.StatusMinorConnConnected, "")
		if b.opts.Online != nil {
			b.opts.Online()
		}
		b.settleLater()
	case engine.StateReconnecting:
		b.setStatus(conn, api.StatusMinorConnReconnecting, detail)
	case engine.StateDisconnected:
		b.setStatus(conn, api.StatusMinorConnDisconnected, detail)
	case engine.StateAuthFailed:
		b.authFailed(detail)
	case engine.StateFailed:
		if b.proxyAuthFailed(detail) {
			return
		}
		b.setStatus(conn, api.StatusMinorConnFailed, detail)
	case engine.StateCredentialsNeeded:
		b.log.Info("the server needs the credentials again", "detail", detail)
	case engine.StateDone:
		// openvpn3 reports its inactivity timeout as CONN_DONE "Inactive
		// tunnel, disconnected"; session-timeout ends the same way.
		b.setStatus(conn, api.StatusMinorConnDone, detail)
	}
}

// credentialsNeeded handles an engine that stopped because the server
// needs credentials it may send only once (a static-challenge or dynamic
// challenge answer, auth-nocache) and no auth-token stands in for them:
// those slots are asked for again (CFG_REQUIRE_USER, AttentionRequired)
// and the session waits for the answers and Connect, as after a dynamic
// challenge. When nothing is left to ask (only a used CRV1 answer), it
// reconnects at once with the plain credentials.
func (b *Backend) credentialsNeeded() {
	q := b.queue()
	b.mu.Lock()
	noCache := b.prof != nil && b.prof.AuthNoCache
	b.mu.Unlock()
	q.askAgain(noCache)
	if q.pending() {
		b.announceInput()
		return
	}
	if err := b.connect(); err != nil {
		b.log.Warn("reconnect with the credentials", "err", err)
	}
}

// authFailed handles AUTH_FAILED: a CRV1 dynamic challenge queues a slot
// for the answer (the session waits in CFG_REQUIRE_USER, as upstream);
// anything else is CONN_AUTH_FAILED with the server's reason, and the
// credentials are asked for again.
func (b *Backend) authFailed(detail string) {
	q := b.queue()
	if f, err := ctlmsg.ParseAuthFailed(detail); err == nil && f.Challenge != nil {
		q.setChallenge(f.Challenge)
		b.log.Info("server sent a dynamic challenge")
		b.announceInput()
		return
	}
	reason := detail
	if f, err := ctlmsg.ParseAuthFailed(detail); err == nil && strings.TrimSpace(f.Reason) != "" {
		reason = f.Reason
	}
	if strings.TrimSpace(reason) == "" || strings.EqualFold(reason, "authentication failed") {
		reason = "Authentication failed"
	}
	q.reset()
	b.setStatus(api.StatusMajorConnection, api.StatusMinorConnAuthFailed, reason)
}

// tunProvider gets the TUN device from netcfg, labelled with the session
// token (as upstream), and remembers it for the device properties.
type tunProvider struct{ b *Backend }

func (p tunProvider) OpenTun(ctx context.Context, cfg netconf.Config) (engine.TunDevice, error) {
	b := p.b
	b.mu.Lock()
	cfg = b.netOv.apply(cfg)
	b.mu.Unlock()
	var tun *netcfgclient.Tun
	var err error
	if early := b.takeEarlyTun(ctx); early != "" {
		tun, err = netcfgclient.NewClient(b.srv.Conn()).OpenOn(ctx, early, cfg)
	} else {
		tun, err = netcfgclient.NewClient(b.srv.Conn()).Open(ctx, b.token, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open TUN device: %w", err)
	}
	b.mu.Lock()
	old := b.tun
	b.tun, b.devicePath, b.deviceName = tun, tun.Path(), tun.Name()
	stopping := b.stopping
	b.mu.Unlock()
	if old != nil {
		_ = old.Close() // a reconnect that did not close the old device
	}
	if stopping {
		b.closeTun()
		return nil, errors.New("backend is shutting down")
	}
	b.log.Info("TUN device ready", "device", tun.Name(), "path", tun.Path())
	return tun, nil
}

// statistics maps the engine counters to the openvpn3 key names (spec
// §6.1); only non-zero counters are included, as upstream.
func statistics(s engine.Stats) map[string]int64 {
	all := []struct {
		key string
		v   int64
	}{
		{"BYTES_IN", s.BytesIn}, {"BYTES_OUT", s.BytesOut},
		{"PACKETS_IN", s.PacketsIn}, {"PACKETS_OUT", s.PacketsOut},
		{"TUN_BYTES_IN", s.TunBytesIn}, {"TUN_BYTES_OUT", s.TunBytesOut},
		{"TUN_PACKETS_IN", s.TunPacketsIn}, {"TUN_PACKETS_OUT", s.TunPacketsOut},
	}
	out := make(map[string]int64, len(all))
	for _, c := range all {
		if c.v != 0 {
			out[c.key] = c.v
		}
	}
	return out
}
