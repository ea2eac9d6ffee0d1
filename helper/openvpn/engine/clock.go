package engine

import (
	"fmt"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/control"
)

// Clock is the time source of the engine's timers (session limits, the
// data plane's timestamps) and of the control session's (keepalive, key
// lifetime, handshake windows): one clock, so unit tests inject a fake one
// and call the timer checks directly.
type Clock = control.Clock

type systemClock = control.SystemClock

// now is the engine's current time.
func (c *Client) now() time.Time { return c.clock.Now() }

func fmtDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
