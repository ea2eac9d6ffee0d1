package engine

import "time"

// OCC EXIT pacing (explicit-exit-notify without cc-exit): OpenVPN 2.x
// sends one OCC EXIT packet per second while it waits to exit, n in all.
const (
	exitInterval = time.Second
	// maxExitPackets bounds the wait so a disconnect never hangs for
	// minutes on a large pushed value (OpenVPN takes up to 1000).
	maxExitPackets = 5
)

// paceExitPackets sends n OCC EXIT data packets, one per exitInterval
// (UDP: nothing acknowledges them, so repeating is the only way to beat
// loss).
func (a *attempt) paceExitPackets(n int) {
	after := a.c.exitAfter
	if after == nil {
		after = time.After
	}
	n = min(n, maxExitPackets)
	for i := range n {
		if i > 0 {
			<-after(exitInterval)
		}
		if err := a.dp.send(occExit); err != nil {
			a.log.Debug("exit notification not sent", "err", err)
			return
		}
	}
}
