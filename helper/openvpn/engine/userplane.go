package engine

import (
	"fmt"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/control"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
)

// The key contract between the control session and the data planes lives
// in the control package; the engine's DCO interface and its callers use
// these names.
type (
	KeySlot      = control.KeySlot
	KeyDirection = control.KeyDirection
	DataKey      = control.DataKey
	KeyPlane     = control.KeyPlane
)

const (
	SlotPrimary   = control.SlotPrimary
	SlotSecondary = control.SlotSecondary
)

// userPlane is the userspace data channel of one attempt: its keys go to
// the attempt's dataplane.Conn, whose slots receive by key_id and whose
// primary key sends. Keepalive runs on the control session's timers and
// traffic is counted in the session's counters as it passes.
type userPlane struct {
	a *attempt
}

func (p *userPlane) InstallKey(slot KeySlot, dk *DataKey) error {
	if slot > SlotSecondary {
		return fmt.Errorf("install key: no key slot %d", slot)
	}
	key, err := dk.UserspaceKey()
	if err != nil {
		return fmt.Errorf("data channel key (%s): %w", dk.Cipher, err)
	}
	a := p.a
	key.SetReplayWindow(a.o.lim.ReplayWindow, a.o.lim.ReplayTime, a.c.now)
	conn := a.dataConn()
	conn.SetFraming(a.comp)
	return conn.InstallKey(dataplane.Slot(slot), key)
}

func (p *userPlane) SwapKeys() error { return p.a.dataConn().SwapKeys() }

func (p *userPlane) DeleteKey(slot KeySlot) error {
	return p.a.dataConn().DeleteKey(dataplane.Slot(slot))
}

// Meter makes the userspace plane a control.MeteredPlane: its keys count
// their use for reneg-bytes, reneg-pkts and the AEAD limits.
func (p *userPlane) Meter(id uint8) control.Meter {
	if k := p.a.dataConn().Key(id); k != nil {
		return k
	}
	return nil
}
