package control

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/replay"
)

// Key lifetime and session limits, as an OpenVPN 2.6 client applies them:
//
//   - reneg-sec n [min] (default 3600 s): the client starts a new key when
//     its primary key is that old. A client uses n exactly (OpenVPN only
//     jitters by default on servers); with min, n minus a random part of
//     n-min, drawn once per connection. 0 turns it off.
//   - reneg-bytes / reneg-pkts: data bytes (on the wire) or packets
//     protected by the key, both directions together. Off by default.
//   - AEAD usage limit (OpenVPN 2.7): AES-GCM keys are replaced
//     when encrypted (or decrypted) 16-byte blocks plus packets reach 7/8
//     of 2^36-1; ChaCha20-Poly1305 and CBC have no such limit.
//   - tran-window (default 3600 s): the previous key still decrypts for
//     that long after a renegotiation started, then it is dropped.
//   - replay-window n [t] (default 64 packets, 15 s).
//   - ping-exit n: nothing received for n s ends the session (ping-restart
//     reconnects instead; whichever was given or pushed last wins).
//   - inactive n [bytes]: less than bytes (default: any) of tunnel
//     traffic in n s ends the session; session-timeout n ends it n s
//     after it connected. Both restart with each connection, as OpenVPN's
//     timers do after a SIGUSR1 restart.
//
// Limits are these options as read from the profile; the engine keeps
// the session limits (inactive, session-timeout) and the replay window,
// the session the rest.
type Limits struct {
	RenegSec, RenegSecMin time.Duration
	RenegBytes, RenegPkts int64
	TranWindow            time.Duration
	PingExit              time.Duration
	Inactive              time.Duration
	InactiveBytes         int64
	SessionTimeout        time.Duration
	ReplayWindow          int
	ReplayTime            time.Duration
}

const (
	defaultRenegSec   = 3600 * time.Second
	defaultTranWindow = 3600 * time.Second
	// aeadBlockLimit is OpenVPN's q+s <= 2^36-1 bound for AES-GCM
	// (cipher_get_aead_limits), of which 7/8 triggers the renegotiation
	// so it completes before the bound (tls_get_limit_aead).
	aeadBlockLimit = ((1 << 36) - 1) / 8 * 7
)

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// LimitsFromProfile reads the limits of a profile, with OpenVPN's defaults.
func LimitsFromProfile(p *profile.Profile) Limits {
	l := Limits{
		RenegSec:       defaultRenegSec,
		RenegBytes:     p.RenegBytes,
		RenegPkts:      p.RenegPkts,
		TranWindow:     defaultTranWindow,
		PingExit:       secs(p.PingExit),
		Inactive:       secs(p.Inactive),
		InactiveBytes:  p.InactiveBytes,
		SessionTimeout: secs(p.SessionTimeout),
		ReplayWindow:   replay.DefaultSize,
		ReplayTime:     replay.DefaultTime,
	}
	if p.RenegSecSet {
		l.RenegSec = secs(p.RenegSec)
	}
	if p.RenegSecMin > 0 && p.RenegSecMin < p.RenegSec {
		l.RenegSecMin = secs(p.RenegSecMin)
	}
	if p.TranWindow > 0 {
		l.TranWindow = secs(p.TranWindow)
	}
	if p.ReplayWindowSet {
		// 0 is OpenVPN's strict mode (no reordering at all): the closest
		// window accepts only ids above the highest seen.
		l.ReplayWindow = max(p.ReplayWindow, 1)
		if p.ReplayTime >= 0 {
			l.ReplayTime = secs(p.ReplayTime)
		}
	}
	return l
}

// RenegAfter is the key age that triggers a renegotiation on one
// connection, 0 for never.
func (l *Limits) RenegAfter(r *rand.Rand) time.Duration {
	if l.RenegSec <= 0 {
		return 0
	}
	if l.RenegSecMin <= 0 {
		return l.RenegSec
	}
	span := int64((l.RenegSec - l.RenegSecMin) / time.Second)
	return l.RenegSec - time.Duration(r.Int64N(max(span, 1)))*time.Second
}

// aeadLimit is the usage limit of a data cipher, 0 for none.
func aeadLimit(cipher string) uint64 {
	if strings.HasPrefix(strings.ToUpper(cipher), "AES-") && strings.HasSuffix(strings.ToUpper(cipher), "-GCM") {
		return aeadBlockLimit
	}
	return 0
}

// renegReason says why a primary key of this age and usage must be
// replaced now ("" if it need not): the first limit reached.
func (l *Limits) renegReason(age, renegAfter time.Duration, u datachan.Usage, cipher string) string {
	switch {
	case renegAfter > 0 && age >= renegAfter:
		return "reneg-sec"
	case l.RenegBytes > 0 && u.Bytes >= uint64(l.RenegBytes):
		return "reneg-bytes"
	case l.RenegPkts > 0 && u.Packets >= uint64(l.RenegPkts):
		return "reneg-pkts"
	}
	if lim := aeadLimit(cipher); lim > 0 && (u.SentBlocks+u.SentID > lim || u.RecvBlocks+u.RecvID > lim) {
		return "AEAD usage limit"
	}
	if u.SentID >= datachan.RenegotiateAt {
		return "packet ids running out"
	}
	return ""
}
