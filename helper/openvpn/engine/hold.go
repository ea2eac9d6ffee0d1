package engine

import (
	"errors"
	"time"
)

// A held client (Config.Hold) begins the connection before the user asks
// for it: Run resolves the remote, opens the socket, sends the reset and
// runs the TLS handshake, then waits before key-method 2, which carries
// the credentials and makes the server authenticate the client and give it
// an address. Until Release nothing is reported (Events), so a front-end
// sees no change; Release reports StateConnecting (and WaitingForServer
// once the reset is out) and the first key's key-method 2 leaves at once,
// from the attempt's own loop. A held connection that fails, or is not
// released within holdLimit, ends Run quietly with ErrHoldEnded: it is
// not retried, the caller starts a fresh client when the user connects.

// ErrHoldEnded: the held connection failed or waited too long before it
// was released; Run returned it, Release refuses it.
var ErrHoldEnded = errors.New("engine: the connection begun ahead ended before it was released")

// holdState is a held client's gate. Fields under Client.mu unless noted.
type holdState struct {
	ch       chan struct{} // closed by Release
	released bool
	ended    bool // failed or expired while held: Release refuses
	rel      Release
	// last is the last state not reported while held.
	last    State
	hasLast bool
	// The Run goroutine's own.
	since   time.Time // when Run began
	applied bool      // rel was taken into the options
}

// Release is what a held client needs from the user's Connect.
type Release struct {
	// Credentials for key-method 2 (KeyPassphrase must be empty: a key
	// that needs one cannot be used before the user gives it).
	Credentials Credentials
	// DCO as in Config.
	DCO DCO
}

// holdLimit is how long a connection may be held: well within the
// hand-window, after which the server drops a TLS session whose
// key-method 2 did not come, so that the released connection still has
// most of it for the authentication and the PUSH_REPLY.
func holdLimit(handWindow time.Duration) time.Duration { return handWindow / 3 }

// heldLocked says states are not reported (c.mu held).
func (c *Client) heldLocked() bool { return c.cfg.Hold && !c.hold.released }

// Release lets a held client go on (any goroutine): the states it held are
// reported and key-method 2 goes out with r's credentials. It fails with
// ErrHoldEnded when the held connection already ended; the caller then
// starts a new Client.
func (c *Client) Release(r Release) error {
	if r.Credentials.KeyPassphrase != "" {
		return errors.New("engine: a held connection cannot take a key passphrase")
	}
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	switch {
	case !c.cfg.Hold:
		c.mu.Unlock()
		return errors.New("engine: Release of a client that is not held")
	case c.hold.ended:
		c.mu.Unlock()
		return ErrHoldEnded
	case c.hold.released:
		c.mu.Unlock()
		return errors.New("engine: released twice")
	}
	c.hold.released, c.hold.rel = true, r
	waiting := c.hold.hasLast && c.hold.last == StateWaitingForServer
	close(c.hold.ch)
	c.mu.Unlock()
	c.report(StateConnecting, "")
	if waiting {
		c.report(StateWaitingForServer, "")
	}
	return nil
}

// endHold is called by the Run goroutine when a try failed: a held client
// ends (true) instead of retrying.
func (c *Client) endHold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.heldLocked() {
		return false
	}
	c.hold.ended = true
	return true
}

// holdGate is the Run goroutine's look at the gate when an attempt begins:
// the channel Release closes while the client is held, nil once released
// (Release's values are then in the options).
func (c *Client) holdGate() <-chan struct{} {
	c.mu.Lock()
	held := c.heldLocked()
	c.mu.Unlock()
	if held {
		return c.hold.ch
	}
	c.applyRelease()
	return nil
}

// applyRelease takes Release's values into the options (Run goroutine,
// once; the options are the Run goroutine's).
func (c *Client) applyRelease() {
	if !c.cfg.Hold || c.hold.applied {
		return
	}
	c.mu.Lock()
	r, ok := c.hold.rel, c.hold.released
	c.mu.Unlock()
	if !ok {
		return
	}
	c.hold.applied = true
	c.opts.setCredentials(c.cfg.Profile, r.Credentials)
	c.cfg.DCO = r.DCO
}

// released is the attempt loop's answer to the gate: key-method 2 goes.
func (a *attempt) released() error {
	a.release = nil
	a.c.applyRelease()
	a.log.Debug("connection released")
	return sessionError(a.s.ReleaseKeyMethod2())
}

// holdDeadline is when a held attempt gives up (zero: not held).
func (a *attempt) holdDeadline() time.Time {
	if a.release == nil {
		return time.Time{}
	}
	return a.c.hold.since.Add(holdLimit(a.o.handWindow))
}

// errHoldExpired ends an attempt held for holdLimit.
var errHoldExpired = errors.New("held too long before it was released")

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
