package engine

import "time"

// checkTimers runs the attempt's timers with the engine's clock: the
// session limits here, then the control session's own (control/timers.go:
// server-poll-timeout, hand-window, keepalive, key lifetime, tran-window).
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
	if a.connected {
		if err := a.checkSessionLimits(now); err != nil {
			return err
		}
	}
	return sessionError(a.s.CheckTimers(now))
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

// startSessionTimers starts inactive and session-timeout (pushed values
// win) when the connection comes up.
func (a *attempt) startSessionTimers(now time.Time, pushedInactive, pushedSessionTimeout int) {
	a.connectedAt, a.inactSince = now, now
	a.inactMark = a.c.ctr.TunBytesIn.Load() + a.c.ctr.TunBytesOut.Load()
	a.inactive, a.inactiveBytes, a.sessionTimeout = a.o.lim.Inactive, a.o.lim.InactiveBytes, a.o.lim.SessionTimeout
	if pushedInactive > 0 {
		a.inactive = time.Duration(pushedInactive) * time.Second
	}
	if pushedSessionTimeout > 0 {
		a.sessionTimeout = time.Duration(pushedSessionTimeout) * time.Second
	}
}
