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

// occExit is an OCC "EXIT" message: the OCC magic followed by opcode 6. It
// tells a server without cc-exit support that the client is leaving.
var occExit = []byte{0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c, 6}

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
