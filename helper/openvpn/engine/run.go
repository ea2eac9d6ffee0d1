package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Reconnect backoff after a connection that had been up was lost.
const (
	minBackoff = time.Second
	maxBackoff = 60 * time.Second
)

// Run connects and keeps the tunnel up until ctx is cancelled (then it
// says goodbye to the server, closes the TUN device and returns nil) or a
// fatal error occurs (authentication failure, HALT, a server that never
// answers the first connection, a bad certificate), which it returns after
// reporting StateAuthFailed or StateFailed.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		return errors.New("engine: Run called twice")
	}
	c.ran = true
	c.mu.Unlock()

	dp := &dataPlane{c: c}
	defer dp.closeTun()

	c.setState(StateConnecting, "")
	everConnected := false
	backoff := minBackoff
	for {
		eps, resolveErr := c.resolveAll(ctx)
		var lastErr error = resolveErr
		for _, ep := range eps {
			if ctx.Err() != nil {
				break
			}
			a := newAttempt(c, dp, ep)
			err := a.run(ctx)
			if a.connected {
				everConnected = true
				backoff = minBackoff
			}
			if ctx.Err() != nil {
				break
			}
			var fe *fatalError
			if errors.As(err, &fe) {
				c.setState(fe.state, fe.err.Error())
				return err
			}
			lastErr = err
			c.log.Warn("connection ended", "server", ep.String(), "err", err)
			if a.connected {
				// A working connection broke: start over from the first
				// remote after a short pause, like OpenVPN's SIGUSR1 restart.
				break
			}
		}
		if ctx.Err() != nil {
			c.setState(StateDisconnected, "")
			return nil
		}
		if lastErr == nil {
			lastErr = errors.New("no server address to try")
		}
		if !everConnected {
			c.setState(StateFailed, lastErr.Error())
			return fmt.Errorf("engine: connect: %w", lastErr)
		}
		c.setState(StateReconnecting, lastErr.Error())
		select {
		case <-ctx.Done():
			c.setState(StateDisconnected, "")
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// resolveAll resolves every remote of the profile in order; the error is
// that of the last remote that failed to resolve.
func (c *Client) resolveAll(ctx context.Context) ([]endpoint, error) {
	var eps []endpoint
	var lastErr error
	for _, r := range c.opts.remotes {
		rctx, cancel := context.WithTimeout(ctx, noResponseTimeout)
		e, err := resolveEndpoints(rctx, net.DefaultResolver, r.Host, r.Port, r.Proto)
		cancel()
		if err != nil {
			c.log.Warn("remote not usable", "remote", r.Host, "err", err)
			lastErr = err
			continue
		}
		eps = append(eps, e...)
	}
	return eps, lastErr
}
