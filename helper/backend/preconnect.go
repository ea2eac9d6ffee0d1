package backend

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/stackreserve"
)

// The connection begun at registration (Options.Preconnect): as soon as
// the profile is evaluated, a held engine (engine.Config.Hold) resolves
// the remote, opens the socket and runs the TLS handshake, and waits
// before key-method 2, which carries the credentials and makes the server
// authenticate the client. Nothing a front-end sees changes: the engine
// reports no state while held and its log is kept back (heldLog). The
// Connect adopts it (Release with the credentials gathered by then), so
// the handshake is off the Connect's path. One that failed or expired
// (the engine bounds the hold well within the hand-window) is discarded
// quietly and the Connect starts afresh; Disconnect, the session's end or
// the backend's exit before the Connect close it.

// preconn is the held engine and its goroutine (engine.New, then Run),
// owned by the backend.
type preconn struct {
	client *engine.Client // set before ready closes; nil: New failed
	cancel context.CancelFunc
	ready  chan struct{} // closed once New returned
	done   chan struct{} // closed when the goroutine ends; err is set then
	err    error
	log    *heldLog
}

// preconnect begins the connection for prof when that needs nothing from
// the user before the TLS handshake (a key passphrase, HTTP proxy
// credentials do); it says whether it did. The engine is made in the
// goroutine, off the registration's reply.
func (b *Backend) preconnect(prof *profile.Profile, pre *engine.Prepared) bool {
	if !b.opts.Preconnect || pre == nil || b.queue().neededBeforeTLS() {
		return false
	}
	hl := &heldLog{held: true}
	cfg := b.engineConfig(prof, pre, engine.Credentials{}, engine.Credentials{}, nil)
	// The journal gets the held engine's records at once; the session's
	// Log signals are kept back.
	signals := heldHandler{inner: newSignalHandler(slog.DiscardHandler, b, api.LogGroupClient), l: hl}
	cfg.Logger, cfg.Hold = slog.New(slog.NewMultiHandler(b.opts.Logger.Handler(), signals)), true
	ctx, cancel := context.WithCancel(context.Background())
	p := &preconn{cancel: cancel, ready: make(chan struct{}), done: make(chan struct{}), log: hl}
	b.mu.Lock()
	if b.stopping || b.pre != nil || b.runCancel != nil {
		b.mu.Unlock()
		cancel()
		return false
	}
	b.pre = p
	tun := !b.dco // a DCO session's device is the kernel's, made later
	b.mu.Unlock()
	if tun {
		// The device too: with the handshake done ahead the PUSH_REPLY can
		// follow the Connect within a round trip, before a device asked for
		// then exists. It stays down, without addresses or routes, until
		// the push configures it; the session's end removes it.
		b.prepareTun()
	}
	go func() {
		defer close(p.done)
		stackreserve.Reserve32K() // the engine runs here: socket, handshake, D-Bus signals
		client, err := engine.New(cfg)
		p.client, p.err = client, err // err is final when client is nil
		close(p.ready)
		if err != nil {
			return
		}
		p.err = client.Run(ctx)
		b.opts.Logger.Debug("engine begun ahead returned", "err", p.err)
	}()
	return true
}

// adopt hands the connection begun ahead to the Connect: the engine is
// released with the credentials and data path of now and becomes the
// session's engine. false: there was none or it ended (it is gone then);
// the Connect starts a new engine.
func (b *Backend) adopt(creds, proxy engine.Credentials, dco engine.DCO) bool {
	b.mu.Lock()
	p := b.pre
	b.pre = nil
	b.hasState = false // the released engine reports connecting at once
	b.mu.Unlock()
	if p == nil {
		return false
	}
	<-p.ready
	if p.client == nil {
		b.dropPreconn(context.Background(), p, "no engine: "+p.err.Error())
		return false
	}
	if proxy != (engine.Credentials{}) {
		b.dropPreconn(context.Background(), p, "HTTP proxy credentials arrived")
		return false
	}
	if dco == nil {
		// Before the release: the PUSH_REPLY may follow within a round
		// trip, and its OpenTun takes this device.
		b.prepareTun()
	}
	if err := p.client.Release(engine.Release{Credentials: creds, DCO: dco}); err != nil {
		b.dropPreconn(context.Background(), p, err.Error())
		return false
	}
	done, ended := make(chan struct{}), make(chan struct{})
	b.mu.Lock()
	stopping := b.stopping
	if !stopping {
		b.client, b.runCancel, b.runDone, b.runEnded = p.client, p.cancel, done, ended
		b.paused = false
	}
	b.mu.Unlock()
	if stopping { // a Disconnect between the two: it did not see this engine
		b.dropPreconn(context.Background(), p, "backend is shutting down")
		return true
	}
	b.log.Info("connecting", "config", b.configPath)
	p.log.release()
	b.opts.Logger.Debug("connection begun ahead adopted")
	go b.run(func() error { <-p.done; return p.err }, done, ended)
	return true
}

// closePreconn ends the connection begun ahead, if there is one.
func (b *Backend) closePreconn(ctx context.Context, why string) {
	b.mu.Lock()
	p := b.pre
	b.pre = nil
	b.mu.Unlock()
	if p != nil {
		b.dropPreconn(ctx, p, why)
	}
}

// dropPreconn cancels a held engine, waits for its Run (bounded by
// StopTimeout and ctx) and drops its kept-back log.
func (b *Backend) dropPreconn(ctx context.Context, p *preconn, why string) {
	p.log.drop()
	p.cancel()
	t := time.NewTimer(b.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		b.opts.Logger.Debug("connection begun ahead discarded", "why", why, "err", p.err)
	case <-t.C:
		b.opts.Logger.Warn("engine did not stop in time")
	case <-ctx.Done():
	}
}

// heldLog keeps a held engine's Log signals until the Connect adopts it
// (then they go out in order, before anything the engine logs later) or
// drops them with it: before the Connect the session's log reads as
// before.
type heldLog struct {
	mu   sync.Mutex
	held bool
	recs []heldRecord
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// maxHeldRecords bounds what a held engine keeps back (its handshake logs
// a few dozen records).
const maxHeldRecords = 512

func (l *heldLog) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.recs {
		_ = x.h.Handle(context.Background(), x.r)
	}
	l.recs, l.held = nil, false
}

func (l *heldLog) drop() {
	l.mu.Lock()
	l.recs = nil
	l.mu.Unlock()
}

// heldHandler passes records to inner, or to l while it holds them.
type heldHandler struct {
	inner slog.Handler
	l     *heldLog
}

func (h heldHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return h.inner.Enabled(ctx, lvl)
}

func (h heldHandler) Handle(ctx context.Context, r slog.Record) error {
	h.l.mu.Lock()
	if h.l.held {
		if len(h.l.recs) < maxHeldRecords {
			h.l.recs = append(h.l.recs, heldRecord{h.inner, r.Clone()})
		}
		h.l.mu.Unlock()
		return nil
	}
	h.l.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

func (h heldHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return heldHandler{inner: h.inner.WithAttrs(as), l: h.l}
}

func (h heldHandler) WithGroup(name string) slog.Handler {
	return heldHandler{inner: h.inner.WithGroup(name), l: h.l}
}

// neededBeforeTLS: the queue has a slot the TLS handshake or the way to
// the server needs (the private key's passphrase, HTTP proxy
// credentials), so nothing can begin before the user answers.
func (q *inputQueue) neededBeforeTLS() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots {
		if s.group == uint32(api.AttentionGroupPKPassphrase) || s.group == uint32(api.AttentionGroupHTTPProxyCreds) {
			return true
		}
	}
	return false
}
