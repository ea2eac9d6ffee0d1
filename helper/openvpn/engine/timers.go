package engine

import (
	"fmt"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
)

// Timers of one connection, checked by the control loop at least once a
// second (and at every packet) with the engine's clock:
//
//   - server-poll-timeout / connect-timeout: nothing heard from the server
//     → this attempt fails, the reconnect policy picks the next remote;
//   - hand-window (default 60 s): the first key not up in time → attempt
//     fails (reconnect); a renegotiated key not up in time → reconnect;
//   - ping: a keepalive when nothing was sent for that long;
//   - ping-restart (default 120 s): nothing received → reconnect
//     (Reconnecting); ping-exit: nothing received → the session ends
//     (Failed, as OpenVPN exits);
//   - inactive, session-timeout: the session ends (Done, openvpn3's
//     CONN_DONE);
//   - the key lifetime limits and lame-duck expiry of limits.go.
//
// The session status each leads to (the backend's mapping to openvpn3's
// StatusMajor/StatusMinor, dbus-api.md §3): a failed attempt is
// Reconnecting (CONNECTION, CONN_RECONNECTING, reason) while the policy
// retries, Failed (CONNECTION, CONN_FAILED, reason) when it gives up;
// ping-exit is Failed; inactive and session-timeout are Done (CONNECTION,
// CONN_DONE, "Inactive tunnel, disconnected …" as openvpn3 reports its
// inactivity timeout, or "Session timeout …"); renegotiation changes no
// status.
func (a *attempt) checkTimers(now time.Time) error {
	if !a.heard && now.Sub(a.started) >= a.ep.firstResponseTimeout() {
		return fmt.Errorf("%w %s (nothing received for %s)", errNoResponse, a.ep, fmtDuration(a.ep.firstResponseTimeout()))
	}
	if !a.connected {
		if now.Sub(a.started) >= a.handWindow {
			return fmt.Errorf("handshake with %s did not complete within %s (hand-window)", a.ep, fmtDuration(a.handWindow))
		}
		if a.keys[0] != nil && a.keys[0].server != nil && !a.pushNext.IsZero() && !now.Before(a.pushNext) {
			a.sendPushRequest(now)
		}
		return nil
	}
	if err := a.checkSessionLimits(now); err != nil {
		return err
	}
	// An offloaded data channel keeps itself alive (SetKeepalive) and
	// reports an expired peer through Deleted; its data never reaches
	// lastRecv.
	idle := now.Sub(time.Unix(0, a.lastRecv.Load()))
	switch {
	case a.dco != nil:
	case a.pingExit > 0 && idle >= a.pingExit:
		return fatal(StateFailed, "ping-exit: nothing received from %s for %s", a.ep, fmtDuration(a.pingExit))
	case a.pingExit <= 0 && a.pingRst > 0 && idle >= a.pingRst:
		return fmt.Errorf("ping-restart: nothing received from %s for %s", a.ep, fmtDuration(a.pingRst))
	}
	if a.dco == nil && a.ping > 0 && now.Sub(time.Unix(0, a.dp.lastSent.Load())) >= a.ping {
		if err := a.dp.sendPing(); err != nil {
			a.log.Debug("ping", "err", err)
		}
	}
	if k := a.cur; k != nil && k != a.primary && k.server == nil && now.Sub(k.started) >= a.o.handWindow {
		return fmt.Errorf("renegotiation of key %d did not complete within %s", k.id, fmtDuration(a.o.handWindow))
	}
	a.expireLameDuck(now)
	if p := a.primary; p != nil && a.cur == p && p.cipher != "" {
		// Offloaded keys have no usage here: reneg-bytes/pkts do not
		// apply to DCO, as in OpenVPN (the kernel asks for a new key
		// near packet-id exhaustion).
		var u datachan.Usage
		if p.dataKey != nil {
			u = p.dataKey.Usage()
		}
		why := a.o.lim.renegReason(now.Sub(p.established), a.renegAfter, u, p.cipher)
		if why != "" {
			a.log.Info("key limit reached", "key_id", p.id, "limit", why)
			// Key ids run 1..7 after the first key and never return to 0.
			if _, err := a.startRenegotiation(p.id%7 + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSessionLimits ends the session on inactive and session-timeout.
func (a *attempt) checkSessionLimits(now time.Time) error {
	if a.sessionTimeout > 0 && now.Sub(a.connectedAt) >= a.sessionTimeout {
		return fatal(StateDone, "Session timeout (session-timeout %s), disconnected", fmtDuration(a.sessionTimeout))
	}
	if a.inactive <= 0 {
		return nil
	}
	// Like OpenVPN's register_activity: tunnel traffic of at least the
	// threshold (any traffic without one) restarts the countdown.
	total := a.c.ctr.TunBytesIn.Load() + a.c.ctr.TunBytesOut.Load()
	if moved := total - a.inactMark; moved > 0 && moved >= a.inactiveBytes {
		a.inactMark, a.inactSince = total, now
		return nil
	}
	if now.Sub(a.inactSince) >= a.inactive {
		return fatal(StateDone, "Inactive tunnel, disconnected (inactive %s)", fmtDuration(a.inactive))
	}
	return nil
}

// expireLameDuck drops the previous key tran-window after the
// renegotiation that replaced it started.
func (a *attempt) expireLameDuck(now time.Time) {
	l := a.lame
	if l == nil || now.Before(l.mustDie) {
		return
	}
	a.lame = nil
	if err := a.plane.DeleteKey(SlotSecondary); err != nil {
		a.log.Warn("deleting the lame-duck key", "key_id", l.id, "err", err)
	}
	if a.keys[l.id] == l {
		a.keys[l.id] = nil
	}
	a.log.Debug("lame-duck key expired", "key_id", l.id)
}

// startSessionTimers starts inactive and session-timeout (pushed values
// win) when the connection comes up.
func (a *attempt) startSessionTimers(now time.Time, pushedInactive, pushedSessionTimeout int) {
	a.connectedAt, a.inactSince = now, now
	a.inactMark = a.c.ctr.TunBytesIn.Load() + a.c.ctr.TunBytesOut.Load()
	a.inactive, a.inactiveBytes, a.sessionTimeout = a.o.lim.inactive, a.o.lim.inactiveBytes, a.o.lim.sessionTimeout
	if pushedInactive > 0 {
		a.inactive = secs(pushedInactive)
	}
	if pushedSessionTimeout > 0 {
		a.sessionTimeout = secs(pushedSessionTimeout)
	}
}

func (a *attempt) nextWake(now time.Time) time.Time {
	next := now.Add(time.Second)
	for _, k := range a.keys {
		if k == nil {
			continue
		}
		if d, ok := k.rel.Deadline(); ok && d.Before(next) {
			next = d
		}
	}
	if !a.connected && !a.pushNext.IsZero() && a.pushNext.Before(next) {
		next = a.pushNext
	}
	return next
}
