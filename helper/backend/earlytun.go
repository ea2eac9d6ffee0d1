package backend

import (
	"context"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/internal/stackreserve"
)

// earlyTunTimeout bounds the creation of the early device: it runs on a
// context of its own (not the engine's), so that its object path is always
// learnt and the device can be removed if nobody configures it.
const earlyTunTimeout = 10 * time.Second

// earlyTun is the TUN device netcfg creates while the handshake runs
// (netcfg's Prepare), for the connection's first OpenTun to configure: the
// device object and the device exist by the time the PUSH_REPLY is in.
type earlyTun struct {
	done chan struct{} // closed once path and err are set
	path dbus.ObjectPath
	err  error
}

// prepareTun starts creating the early TUN device, with IFF_VNET_HDR if the
// profile does not switch the TUN offload off (as the engine decides for a
// connection without DCO). The device is taken by OpenTun or removed by
// closeTun.
func (b *Backend) prepareTun() {
	b.mu.Lock()
	vnetHdr := b.prof != nil && !b.prof.Offload.NoTUN
	if b.early != nil || b.stopping {
		b.mu.Unlock()
		return
	}
	e := &earlyTun{done: make(chan struct{})}
	b.early = e
	b.mu.Unlock()
	go func() {
		defer close(e.done)
		stackreserve.Reserve16K() // a D-Bus call
		ctx, cancel := context.WithTimeout(context.Background(), earlyTunTimeout)
		defer cancel()
		e.path, e.err = netcfgclient.NewClient(b.srv.Conn()).Prepare(ctx, b.token, vnetHdr)
	}()
}

// takeEarlyTun returns the early device's object path once its creation
// has ended: "" when there is none or it failed (OpenTun then creates the
// device itself).
func (b *Backend) takeEarlyTun(ctx context.Context) dbus.ObjectPath {
	b.mu.Lock()
	e := b.early
	b.early = nil
	b.mu.Unlock()
	if e == nil {
		return ""
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		b.dropEarlyTun(e)
		return ""
	}
	if e.err != nil {
		b.log.Debug("no early TUN device", "err", e.err)
		return ""
	}
	return e.path
}

// closeEarlyTun removes an early device nobody took.
func (b *Backend) closeEarlyTun() {
	b.mu.Lock()
	e := b.early
	b.early = nil
	b.mu.Unlock()
	if e != nil {
		b.dropEarlyTun(e)
	}
}

// dropEarlyTun waits for e's creation (bounded by earlyTunTimeout) and
// destroys the device object it made, which removes the device.
func (b *Backend) dropEarlyTun(e *earlyTun) {
	<-e.done
	if e.err != nil || e.path == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), earlyTunTimeout)
	defer cancel()
	if err := netcfgclient.NewClient(b.srv.Conn()).Destroy(ctx, e.path); err != nil {
		b.log.Warn("remove the early TUN device", "err", err)
	}
}
