package backend

import (
	"context"

	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/stackreserve"
)

// textNotEvaluated: a method that needs the profile's evaluation gave up
// waiting for it (the caller left, or the backend stops).
const textNotEvaluated = "Backend service is still evaluating the configuration"

// evaluateBehind runs the profile's evaluation (engine.Prepare: the TLS
// configuration and the key; then the held connection or the warm-up)
// after the registration is answered: the session start waits for the
// parsed profile only. It is called only for a profile that asks the user
// nothing (registrationConfirmation knows that without Prepare), so the
// input queue, Ready and the user input methods need nothing from it;
// Connect and Restart, which use what it prepares, wait for it
// (afterEvaluation), and teardown waits for the goroutine.
func (b *Backend) evaluateBehind(prof *profile.Profile) {
	done := make(chan struct{})
	b.mu.Lock()
	b.evalDone = done
	hook := b.evalHook
	b.mu.Unlock()
	go func() {
		defer close(done)
		stackreserve.Reserve16K() // the profile's TLS material is parsed here
		if hook != nil {
			hook()
		}
		b.prepareProfile(prof)
	}()
}

// evaluated waits until the evaluation behind the registration, if one
// runs, has ended, or ctx ends.
func (b *Backend) evaluated(ctx context.Context) error {
	b.mu.Lock()
	done := b.evalDone
	b.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errClient(textNotEvaluated)
	}
}

// waitEvaluated waits for the evaluation's goroutine (it does not block:
// Prepare parses in memory and preconnect hands its work to goroutines of
// its own).
func (b *Backend) waitEvaluated() { _ = b.evaluated(context.Background()) }

// afterEvaluation makes a method handler wait for the evaluation first.
func (b *Backend) afterEvaluation(h func(*busobj.Call) ([]any, error)) func(*busobj.Call) ([]any, error) {
	return func(c *busobj.Call) ([]any, error) {
		if err := b.evaluated(c.Ctx); err != nil {
			return nil, err
		}
		return h(c)
	}
}
