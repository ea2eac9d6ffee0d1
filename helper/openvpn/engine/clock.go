package engine

import (
	"fmt"
	"time"
)

// Clock is the time source of the engine's timers (keepalive, session
// limits, key lifetime, handshake windows). Production uses the system
// clock; unit tests inject a fake one and call the timer checks directly,
// so every timer is tested without waiting for it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// now is the engine's current time.
func (c *Client) now() time.Time { return c.clock.Now() }

func fmtDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
