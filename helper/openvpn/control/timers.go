package control

import (
	"fmt"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
)

// Timers of one session, checked by the caller's loop at least at
// NextWake (and at every packet) with the injected clock:
//
//   - server-poll-timeout / connect-timeout: nothing heard from the server
//     → ErrNoResponse; the caller's reconnect policy picks the next remote;
//   - hand-window (default 60 s): the first key not up in time → the
//     session fails (reconnect); a renegotiated key not up in time → the
//     same;
//   - PUSH_REQUEST repeated (after 1 s, then every 2 s) until the
//     PUSH_REPLY;
//   - ping: a keepalive when nothing was sent for that long;
//   - ping-restart (default 120 s): nothing received → the session fails
//     (the caller reconnects); ping-exit: nothing received → ErrPingExit
//     (the caller ends the session, as OpenVPN exits);
//   - the key lifetime limits (reneg-sec/bytes/pkts, the AEAD usage limit)
//     and lame-duck expiry (tran-window) of limits.go.
//
// The session limits (inactive, session-timeout) are the caller's: they
// depend on tunnel traffic, not on the control channel. Renegotiation
// changes no status.
func (s *Session) CheckTimers(now time.Time) error {
	if !s.heard && now.Sub(s.started) >= s.cfg.FirstResponse {
		return fmt.Errorf("%w %s (nothing received for %s)", ErrNoResponse, s.cfg.Server, fmtDuration(s.cfg.FirstResponse))
	}
	if !s.connected {
		if now.Sub(s.started) >= s.handWindow {
			return fmt.Errorf("handshake with %s did not complete within %s (hand-window)", s.cfg.Server, fmtDuration(s.handWindow))
		}
		if s.keys[0] != nil && s.keys[0].server != nil && !s.pushNext.IsZero() && !now.Before(s.pushNext) {
			s.sendPushRequest(now)
		}
		return nil
	}
	// An offloaded data channel keeps itself alive (Keepalive) and
	// reports an expired peer to the caller; its data never reaches
	// LastReceived.
	idle := now.Sub(s.lastReceived())
	switch {
	case s.offload:
	case s.pingExit > 0 && idle >= s.pingExit:
		return fmt.Errorf("%w: nothing received from %s for %s", ErrPingExit, s.cfg.Server, fmtDuration(s.pingExit))
	case s.pingExit <= 0 && s.pingRst > 0 && idle >= s.pingRst:
		return fmt.Errorf("ping-restart: nothing received from %s for %s", s.cfg.Server, fmtDuration(s.pingRst))
	}
	if !s.offload && s.ping > 0 && now.Sub(s.h.LastSent()) >= s.ping {
		if err := s.h.SendPing(); err != nil {
			s.log.Debug("ping", "err", err)
		}
	}
	if k := s.cur; k != nil && k != s.primary && k.server == nil && now.Sub(k.started) >= s.cfg.HandWindow {
		return fmt.Errorf("renegotiation of key %d did not complete within %s", k.id, fmtDuration(s.cfg.HandWindow))
	}
	s.expireLameDuck(now)
	if p := s.primary; p != nil && s.cur == p && p.cipher != "" {
		// Offloaded keys have no usage here: reneg-bytes/pkts do not
		// apply to DCO, as in OpenVPN (the kernel asks for a new key
		// near packet-id exhaustion).
		var u datachan.Usage
		if p.meter != nil {
			u = p.meter.Usage()
		}
		why := s.cfg.Limits.renegReason(now.Sub(p.established), s.renegAfter, u, p.cipher)
		if why != "" {
			s.log.Info("key limit reached", "key_id", p.id, "limit", why)
			// Key ids run 1..7 after the first key and never return to 0.
			if _, err := s.startRenegotiation(p.id%7 + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// lastReceived is the later of the last authentic control packet and the
// data channel's last packet.
func (s *Session) lastReceived() time.Time {
	if d := s.h.LastReceived(); d.After(s.lastCtl) {
		return d
	}
	return s.lastCtl
}

// expireLameDuck drops the previous key tran-window after the
// renegotiation that replaced it started.
func (s *Session) expireLameDuck(now time.Time) {
	l := s.lame
	if l == nil || now.Before(l.mustDie) {
		return
	}
	s.lame = nil
	if err := s.plane.DeleteKey(SlotSecondary); err != nil {
		s.log.Warn("deleting the lame-duck key", "key_id", l.id, "err", err)
	}
	if s.keys[l.id] == l {
		s.keys[l.id] = nil
	}
	s.log.Debug("lame-duck key expired", "key_id", l.id)
}

// NextWake is when CheckTimers or Flush has work next: a retransmission,
// a repeated PUSH_REQUEST, or at the latest a second from now.
func (s *Session) NextWake(now time.Time) time.Time {
	next := now.Add(time.Second)
	for _, k := range s.keys {
		if k == nil {
			continue
		}
		if d, ok := k.rel.Deadline(); ok && d.Before(next) {
			next = d
		}
	}
	if !s.connected && !s.pushNext.IsZero() && s.pushNext.Before(next) {
		next = s.pushNext
	}
	return next
}

func fmtDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
