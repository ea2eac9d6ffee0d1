package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Happy eyeballs (RFC 8305) across the addresses of one remote: instead
// of giving each address the whole server-poll-timeout in turn, the
// addresses are tried in interleaved family order, each started
// connectionAttemptDelay after the previous one (or at once when it
// failed), and the first that answers is used. The "answer" is the TCP
// connect for TCP, and for UDP the server's HARD_RESET reply to a probe
// reset (stateless on 2.6 servers, which keep no state before a client's
// third packet).

// connectionAttemptDelay is RFC 8305's recommended stagger.
const connectionAttemptDelay = 250 * time.Millisecond

// interleaveFamilies orders endpoints as RFC 8305 §4 does: the family of
// the resolver's first address first, then alternating, each family in
// resolver order.
func interleaveFamilies(eps []endpoint) []endpoint {
	if len(eps) < 2 {
		return eps
	}
	var first, other []endpoint
	for _, ep := range eps {
		if ep.isIPv6() == eps[0].isIPv6() {
			first = append(first, ep)
		} else {
			other = append(other, ep)
		}
	}
	out := make([]endpoint, 0, len(eps))
	for i := 0; i < len(first) || i < len(other); i++ {
		if i < len(first) {
			out = append(out, first[i])
		}
		if i < len(other) {
			out = append(out, other[i])
		}
	}
	return out
}

// probeFunc tries one endpoint: a transport the attempt may keep (TCP's
// connection) or nil (a UDP probe, whose socket is closed), or an error.
type probeFunc func(ctx context.Context, ep endpoint) (transport.Conn, error)

// raceEndpoints runs probe on eps, starting the next one when the previous
// failed or delay passed without an answer; the first success wins and
// the other probes are cancelled and waited for (their transports
// closed). wait paces the stagger: time.After, or a fake in tests.
func raceEndpoints(ctx context.Context, eps []endpoint, delay time.Duration, wait func(time.Duration) <-chan time.Time,
	probe probeFunc) (int, transport.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i   int
		tr  transport.Conn
		err error
	}
	results := make(chan result, len(eps))
	next, running := 0, 0
	var tick <-chan time.Time
	start := func() {
		i := next
		next++
		running++
		go func() {
			tr, err := probe(ctx, eps[i])
			results <- result{i, tr, err}
		}()
		tick = nil
		if next < len(eps) {
			tick = wait(delay)
		}
	}
	// finish cancels the probes still running and closes what they open.
	finish := func() {
		cancel()
		for ; running > 0; running-- {
			if r := <-results; r.tr != nil {
				r.tr.Close()
			}
		}
	}
	start()
	var errs []error
	for {
		select {
		case <-ctx.Done():
			finish()
			return -1, nil, ctx.Err()
		case <-tick:
			start()
		case r := <-results:
			running--
			if r.err == nil {
				finish()
				return r.i, r.tr, nil
			}
			errs = append(errs, r.err)
			if next < len(eps) {
				start()
			} else if running == 0 {
				return -1, nil, errors.Join(errs...)
			}
		}
	}
}

// raceAddresses picks, among the addresses of one remote, the one that
// answers first (see above). It returns the endpoints with the winner
// first (the others follow as fallbacks for a later failure) and, for
// TCP, the winner's open connection for the first attempt. One address,
// a proxy, or a fixed local port (lport: parallel sockets cannot share
// it) is left to the attempts in order, as before.
func (c *Client) raceAddresses(ctx context.Context, eps []endpoint) ([]endpoint, transport.Conn, error) {
	if len(eps) < 2 || eps[0].proxy != nil || eps[0].lport > 0 {
		return eps, nil, nil
	}
	eps = interleaveFamilies(eps)
	wait := c.raceWait
	if wait == nil {
		wait = time.After
	}
	i, tr, err := raceEndpoints(ctx, eps, connectionAttemptDelay, wait, c.probe)
	if err != nil {
		return nil, nil, err
	}
	c.log.Debug("happy eyeballs: first to answer", "server", eps[i].String())
	out := append([]endpoint{eps[i]}, eps[:i]...)
	return append(out, eps[i+1:]...), tr, nil
}

// probe tries one endpoint within its server-poll-timeout.
func (c *Client) probe(ctx context.Context, ep endpoint) (transport.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, ep.firstResponseTimeout())
	defer cancel()
	if ep.proto() == "tcp" {
		return dialTransport(ctx, c.cfg.Dial, ep)
	}
	var tr transport.Conn
	var err error
	if c.cfg.Profile.Float {
		tr, err = listenFloat(ctx, c.cfg.ListenPacket, ep)
	} else {
		tr, err = dialTransport(ctx, c.cfg.Dial, ep)
	}
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	if err := c.probeReset(ctx, tr); err != nil {
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	return nil, nil
}

// probeReset sends a client hard reset every tls-timeout until the server
// answers with its hard reset for this session.
func (c *Client) probeReset(ctx context.Context, tr transport.Conn) error {
	w, err := c.opts.newWrapper()
	if err != nil {
		return err
	}
	sid, err := wire.NewSessionID()
	if err != nil {
		return err
	}
	op := wire.OpControlHardResetClientV2
	if c.opts.wrapMode == "tls-crypt-v2" {
		op = wire.OpControlHardResetClientV3
	}
	answered := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends when tr is closed (deferred by the caller) or it got the answer
		defer wg.Done()
		buf := make([]byte, maxPacket)
		for {
			n, err := tr.ReadPacket(buf)
			if err != nil {
				return
			}
			p, err := w.Unwrap(buf[:n])
			if err == nil && p.Opcode == wire.OpControlHardResetServerV2 && (len(p.Acks) == 0 || p.RemoteSessionID == sid) {
				close(answered)
				return
			}
		}
	}()
	defer func() { tr.Close(); wg.Wait() }()
	for {
		pkt, err := w.Wrap(nil, &wire.ControlPacket{Opcode: op, SessionID: sid})
		if err != nil {
			return err
		}
		if err := tr.WritePacket(pkt); err != nil {
			return err
		}
		select {
		case <-answered:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%w (nothing received)", errNoResponse)
		case <-time.After(c.opts.tlsTimeout):
		}
	}
}
