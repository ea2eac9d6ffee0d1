package backend

import (
	"context"
	"errors"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// warmTimeout bounds the warm-up (it runs in memory: a bound for
// a machine too loaded to finish it, not a wait for anyone).
const warmTimeout = 5 * time.Second

// prepareProfile sets up the input queue for prof and does ahead of the
// Connect what the connect would do first: the engine builds the TLS
// configuration (and so knows which keys need a passphrase: PEM, PKCS#8,
// PKCS#12), which the Connect's engine reuses, and the connection is begun
// (preconnect.go) or else the handshake is warmed.
func (b *Backend) prepareProfile(prof *profile.Profile) {
	pre, err := engine.Prepare(prof, "")
	inputs := newInputQueue(prof, errors.Is(err, engine.ErrKeyPassphraseNeeded))
	b.mu.Lock()
	if b.inputs == nil { // one made at registration (known empty) stays
		b.inputs = inputs
	}
	b.prepared = pre
	b.mu.Unlock()
	if !b.preconnect(prof, pre) { // its handshake is the warm-up
		b.warm(pre)
	}
}

// warm runs, once and in memory, the crypto of the client's side of the
// handshake (engine's Prepared.Warm) while the backend waits for its
// Connect, so the real handshake's turns do not run that code for the
// first time.
// The goroutine is the backend's: teardown ends it (stopWarm).
func (b *Backend) warm(pre *engine.Prepared) {
	if pre == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
	done := make(chan struct{})
	b.mu.Lock()
	if b.warmStop != nil || b.stopping {
		b.mu.Unlock()
		cancel()
		return
	}
	b.warmStop = func() { cancel(); <-done }
	b.mu.Unlock()
	go func() {
		defer close(done)
		defer cancel()
		start := time.Now()
		err := pre.Warm(ctx)
		b.opts.Logger.Debug("TLS warm-up handshake", "took", time.Since(start), "err", err)
	}()
}

// stopWarm ends the warm-up, if one runs, and waits for it.
func (b *Backend) stopWarm() {
	b.mu.Lock()
	stop := b.warmStop
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
}
