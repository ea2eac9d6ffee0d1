package engine

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
type limitOptions struct {
	renegSec, renegSecMin time.Duration
	renegBytes, renegPkts int64
	tranWindow            time.Duration
	pingExit              time.Duration
	inactive              time.Duration
	inactiveBytes         int64
	sessionTimeout        time.Duration
	replayWindow          int
	replayTime            time.Duration
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

func limitsFromProfile(p *profile.Profile) limitOptions {
	l := limitOptions{
		renegSec:       defaultRenegSec,
		renegBytes:     p.RenegBytes,
		renegPkts:      p.RenegPkts,
		tranWindow:     defaultTranWindow,
		pingExit:       secs(p.PingExit),
		inactive:       secs(p.Inactive),
		inactiveBytes:  p.InactiveBytes,
		sessionTimeout: secs(p.SessionTimeout),
		replayWindow:   replay.DefaultSize,
		replayTime:     replay.DefaultTime,
	}
	if p.RenegSecSet {
		l.renegSec = secs(p.RenegSec)
	}
	if p.RenegSecMin > 0 && p.RenegSecMin < p.RenegSec {
		l.renegSecMin = secs(p.RenegSecMin)
	}
	if p.TranWindow > 0 {
		l.tranWindow = secs(p.TranWindow)
	}
	if p.ReplayWindowSet {
		// 0 is OpenVPN's strict mode (no reordering at all): the closest
		// window accepts only ids above the highest seen.
		l.replayWindow = max(p.ReplayWindow, 1)
		if p.ReplayTime >= 0 {
			l.replayTime = secs(p.ReplayTime)
		}
	}
	return l
}

// renegAfter is the key age that triggers a renegotiation on one
// connection, 0 for never.
func (l *limitOptions) renegAfter(r *rand.Rand) time.Duration {
	if l.renegSec <= 0 {
		return 0
	}
	if l.renegSecMin <= 0 {
		return l.renegSec
	}
	span := int64((l.renegSec - l.renegSecMin) / time.Second)
	return l.renegSec - time.Duration(r.Int64N(max(span, 1)))*time.Second
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
func (l *limitOptions) renegReason(age, renegAfter time.Duration, u datachan.Usage, cipher string) string {
	switch {
	case renegAfter > 0 && age >= renegAfter:
		return "reneg-sec"
	case l.renegBytes > 0 && u.Bytes >= uint64(l.renegBytes):
		return "reneg-bytes"
	case l.renegPkts > 0 && u.Packets >= uint64(l.renegPkts):
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
