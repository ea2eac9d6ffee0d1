package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"
)

// Run connects and keeps the tunnel up until ctx is cancelled (then it
// says goodbye to the server, closes the TUN device and returns nil) or a
// fatal error occurs (authentication failure, HALT, a bad certificate, or
// servers that do not answer as the policy in net_remotes.go says), which
// it returns after reporting StateAuthFailed or StateFailed.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		return errors.New("engine: Run called twice")
	}
	c.ran = true
	c.mu.Unlock()

	// Every packet between TUN and data channel passes the MSS clamp;
	// wrapping the provider keeps the data plane unaware of it.
	clamp := &mssClamp{}
	c.cfg.Tun = &mssTunProvider{inner: c.cfg.Tun, clamp: clamp}
	dp := newDataPlane(c)
	defer dp.closeTun()
	c.hold.since = c.now()

	c.setState(StateConnecting, "")
	list := c.retry.order(c.remotes, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	return c.connectLoop(ctx, list, func(e connEntry) (bool, error) { return c.tryEntry(ctx, dp, clamp, e) })
}

// connectLoop tries the remotes of list as the policy in net_remotes.go
// says; try connects to one entry and returns when that connection ends.
func (c *Client) connectLoop(ctx context.Context, list []connEntry, try func(connEntry) (connected bool, err error)) error {
	everConnected := false
	// failed counts consecutive failed tries since the start or since the
	// last working connection; every len(list) of them is one pass.
	failed := 0
	// answered: a server answered but the attempt failed (TLS, push,
	// handshake): from then on keep trying, as OpenVPN does — the server
	// or the clock may be fixed meanwhile (connect-retry-max still bounds
	// it when set).
	answered := false
	var lastErr error
	for i := 0; ; {
		k := failed
		if everConnected && k == 0 {
			k = 1 // a connection just broke: pause connect-retry first
		}
		if d := c.retry.delay(k, len(list)); d > 0 {
			c.log.Debug("waiting before the next connection attempt", "delay", d)
			select {
			case <-ctx.Done():
				c.setState(StateDisconnected, "")
				return nil
			case <-time.After(d):
			}
		}
		connected, err := try(list[i])
		if ctx.Err() != nil {
			c.setState(StateDisconnected, "")
			return nil
		}
		if c.endHold() {
			c.log.Debug("the connection begun ahead ended", "err", err)
			return fmt.Errorf("%w: %w", ErrHoldEnded, err)
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			c.setState(fe.state, fe.err.Error())
			return err
		}
		lastErr = err
		var ae *advanceError
		if !connected && errors.As(err, &ae) {
			// AUTH_FAILED,TEMP: the server answered and asked to come back
			// later (the pause is over), elsewhere unless advance says no.
			i = (i + 1) % len(list)
			c.setState(StateReconnecting, errText(err))
			continue
		}
		if connected {
			// A working connection broke: try the same remote again first
			// (it worked a moment ago), then the others, like OpenVPN's
			// SIGUSR1 restart — unless the server said RESTART,[N]: then
			// the next remote.
			everConnected, failed = true, 0
			if restartAdvances(err) {
				i = (i + 1) % len(list)
			}
			c.setState(StateReconnecting, errText(err))
			continue
		}
		failed++
		i = (i + 1) % len(list)
		var sf *serverFailure
		if errors.As(err, &sf) {
			answered = true
		}
		if everConnected || answered {
			// The reason goes to the status while the policy retries.
			c.setState(StateReconnecting, errText(err))
		}
		if failed%len(list) != 0 {
			continue
		}
		limit := c.retry.maxPasses
		if limit == 0 && !everConnected && !answered {
			limit = 1
		}
		if limit > 0 && failed/len(list) >= limit {
			if lastErr == nil {
				lastErr = errors.New("no server address to try")
			}
			c.setState(StateFailed, lastErr.Error())
			return fmt.Errorf("engine: connect: %w", lastErr)
		}
	}
}

// serverFailure is an attempt that reached the server (it answered) and
// failed before the tunnel came up.
type serverFailure struct{ err error }

func (e *serverFailure) Error() string { return e.err.Error() }
func (e *serverFailure) Unwrap() error { return e.err }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// tryEntry resolves one remote and tries its addresses in order until one
// connects. connected says a connection had come up (and later ended).
func (c *Client) tryEntry(ctx context.Context, dp *dataPlane, clamp *mssClamp, e connEntry) (connected bool, err error) {
	eps, err := c.resolveEntry(ctx, e)
	if err != nil {
		c.log.Warn("remote not usable", "remote", e.remote.Host, "err", err)
		return false, err
	}
	eps, first, err := c.raceAddresses(ctx, eps) // net_happy.go
	if err != nil {
		c.log.Warn("no address of the remote answered", "remote", e.remote.Host, "err", err)
		return false, err
	}
	for i, ep := range eps {
		if ctx.Err() != nil {
			if first != nil {
				first.Close()
			}
			return false, ctx.Err()
		}
		clamp.configure(e, ep)
		a := newAttempt(c, dp, ep)
		if i == 0 {
			a.pre = first
		}
		err = a.run(ctx)
		if a.pre != nil { // never opened: ctx ended first
			a.pre.Close()
		}
		if ctx.Err() != nil {
			return a.connected, err
		}
		var fe *fatalError
		if errors.As(err, &fe) || c.endHold() {
			return a.connected, err
		}
		c.log.Warn("connection ended", "server", ep.String(), "err", err)
		if a.heard && !a.connected {
			err = &serverFailure{err: err}
		}
		var ae *advanceError
		if errors.As(err, &ae) && ae.nextRemote {
			return a.connected, err
		}
		if a.connected {
			return true, err
		}
	}
	return false, err
}

// resolveEntry turns one remote into the endpoints to try. Through a proxy
// the proxy resolves the name. resolv-retry keeps retrying a failed lookup.
func (c *Client) resolveEntry(ctx context.Context, e connEntry) ([]endpoint, error) {
	network, err := normalizeProto(e.remote.Proto)
	if err != nil {
		return nil, err
	}
	port := e.remote.Port
	if port == "" {
		port = "1194"
	}
	base := endpoint{host: e.remote.Host, port: port, network: network, pollTimeout: e.pollTimeout, proxy: e.proxy, lport: e.lport}
	if e.proxy != nil {
		base.network = "tcp"
		base.addr = net.JoinHostPort(e.remote.Host, port)
		return []endpoint{base}, nil
	}
	giveUp := time.Now()
	switch {
	case c.retry.resolvRetry < 0:
		giveUp = giveUp.Add(e.pollTimeout)
	case c.retry.resolvRetry > 0:
		giveUp = giveUp.Add(c.retry.resolvRetry)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, min(e.pollTimeout, 30*time.Second))
		eps, err := resolveEndpoints(rctx, c.resolver, c.lookupName(e.remote.Host), port, e.remote.Proto) // net_names.go
		cancel()
		if err == nil {
			for i := range eps {
				eps[i].pollTimeout, eps[i].lport = base.pollTimeout, base.lport
				eps[i].host = e.remote.Host
			}
			return eps, nil
		}
		if ctx.Err() != nil || !time.Now().Add(time.Second).Before(giveUp) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}
