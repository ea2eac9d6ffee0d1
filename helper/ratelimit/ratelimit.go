// Package ratelimit is the per-UID token bucket the helper puts in front of
// its expensive methods (Import, NewTunnel), so that one local user cannot
// keep the helper busy for everyone. Root is never limited.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Rate is PerMinute calls a minute on average with bursts of Burst calls.
// A zero PerMinute means unlimited.
type Rate struct {
	PerMinute float64
	Burst     int
}

// String is the rate as the configuration file and flags write it:
// "<per-minute>/<burst>".
func (r Rate) String() string { return fmt.Sprintf("%g/%d", r.PerMinute, r.Burst) }

// Parse reads "<per-minute>/<burst>" (e.g. "30/10"); "0" means unlimited.
func Parse(s string) (Rate, error) {
	if s == "0" {
		return Rate{}, nil
	}
	perMin, burst, ok := strings.Cut(s, "/")
	pm, err1 := strconv.ParseFloat(perMin, 64)
	b, err2 := strconv.Atoi(burst)
	if !ok || err1 != nil || err2 != nil {
		return Rate{}, fmt.Errorf("rate %q: want <calls per minute>/<burst>, e.g. 30/10, or 0 for none", s)
	}
	if !(pm > 0) || pm > 1e6 || b < 1 {
		return Rate{}, fmt.Errorf("rate %q: calls per minute must be above 0 and the burst at least 1", s)
	}
	return Rate{PerMinute: pm, Burst: b}, nil
}

// maxBuckets bounds the map: beyond it, full buckets (UIDs idle long
// enough to have refilled) are forgotten first.
const maxBuckets = 4096

// Limiter keeps one bucket per UID.
type Limiter struct {
	rate Rate
	now  func() time.Time

	mu      sync.Mutex
	buckets map[uint32]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter; clock nil means time.Now.
func New(r Rate, clock func() time.Time) *Limiter {
	if clock == nil {
		clock = time.Now
	}
	return &Limiter{rate: r, now: clock, buckets: map[uint32]*bucket{}}
}

// Allow takes a token for uid and reports whether there was one; when not,
// wait is how long until the next token.
func (l *Limiter) Allow(uid uint32) (ok bool, wait time.Duration) {
	if l == nil || uid == 0 || l.rate.PerMinute <= 0 {
		return true, 0
	}
	now := l.now()
	perSec := l.rate.PerMinute / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[uid]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: float64(l.rate.Burst), last: now}
		l.buckets[uid] = b
	}
	b.tokens = min(float64(l.rate.Burst), b.tokens+now.Sub(b.last).Seconds()*perSec)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / perSec * float64(time.Second))
}

func (l *Limiter) pruneLocked(now time.Time) {
	perSec := l.rate.PerMinute / 60
	for uid, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*perSec >= float64(l.rate.Burst) {
			delete(l.buckets, uid)
		}
	}
	if len(l.buckets) >= maxBuckets { // all busy: start over rather than grow
		clear(l.buckets)
	}
}

// Rate is the limiter's rate.
func (l *Limiter) Rate() Rate { return l.rate }

// Check is Allow as a D-Bus error for method what: nil when allowed.
func (l *Limiter) Check(uid uint32, what string) error {
	ok, wait := l.Allow(uid)
	if ok {
		return nil
	}
	return api.Error(api.DomainRequest, fmt.Sprintf("Too many %s calls from this user (limit %g a minute, bursts of %d); try again in %s",
		what, l.rate.PerMinute, l.rate.Burst, wait.Round(time.Second)+time.Second))
}
