package control

import "time"

// Clock is the time source of the session's timers (keepalive, key
// lifetime, handshake windows). Production uses the system clock; unit
// tests inject a fake one and call CheckTimers directly, so every timer is
// tested without waiting for it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }
