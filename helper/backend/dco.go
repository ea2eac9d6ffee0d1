package backend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// dcoBlocker says why the profile needs something the kernel's data channel
// cannot do ("" when nothing): compression framing, a non-AEAD data cipher,
// fragment, a proxy, a tap device.
func dcoBlocker(p *profile.Profile) string {
	switch {
	case p.Compress != "" || p.CompLZO != "":
		return "the profile uses compression framing, which DCO cannot carry"
	case p.HTTPProxy != nil:
		return "the connection goes through an HTTP proxy"
	case strings.HasPrefix(p.Dev, "tap"):
		return "tap devices cannot be offloaded"
	}
	ciphers := p.DataCiphers
	if len(ciphers) == 0 && p.Cipher != "" {
		ciphers = []string{p.Cipher}
	}
	if len(ciphers) > 0 && !slices.ContainsFunc(ciphers, func(c string) bool { _, ok := dco.CipherFor(strings.ToUpper(c)); return ok }) {
		return "no AEAD data cipher (AES-GCM, ChaCha20-Poly1305) among " + strings.Join(ciphers, ":")
	}
	return ""
}

// dcoFallback says why a session that asked for DCO runs on TUN, "" when
// nothing stands in the way. available and unavailableWhy come from
// netcfg's DcoAvailable.
func dcoFallback(p *profile.Profile, available bool, unavailableWhy string) string {
	if !available {
		if unavailableWhy == "" {
			unavailableWhy = "the kernel has no ovpn module"
		}
		return unavailableWhy
	}
	return dcoBlocker(p)
}

// chooseDataPath runs before a connection: a session that asked for DCO
// (the dco property) learns from netcfg whether the kernel offers it. If
// not, or the profile needs what DCO cannot do, the backend logs why and
// the dco property reads false; otherwise the engine gets the kernel's
// data plane (nil: TUN), and the property says at CONNECTED whether the
// engine really handed the connection over (it still refuses TCP, DATA_V1
// servers and the like, and logs why).
// dataPath is the Connect's chooseDataPath: a TUN device prepared at
// registration (preconnect) goes when the kernel's device is chosen.
func (b *Backend) dataPath() engine.DCO {
	dco := b.chooseDataPath()
	if dco != nil {
		b.closeEarlyTun()
	}
	return dco
}

func (b *Backend) chooseDataPath() engine.DCO {
	b.mu.Lock()
	want, prof := b.dco, b.prof
	b.dcoOn = false
	b.mu.Unlock()
	if !want || prof == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dcoCallTimeout)
	defer cancel()
	available, err := netcfgclient.NewClient(b.srv.Conn()).DcoAvailable(ctx)
	why := ""
	if err != nil {
		available, why = false, "netcfg could not say whether the kernel offers DCO: "+err.Error()
	} else if !available {
		why = "the kernel has no ovpn module (generic netlink family \"ovpn\")"
	}
	if why = dcoFallback(prof, available, why); why != "" {
		b.log.Warn("data channel offload requested, using TUN instead", "reason", why)
		b.mu.Lock()
		b.dco = false
		b.mu.Unlock()
		return nil
	}
	b.log.Info("data channel offload requested and available")
	b.mu.Lock()
	b.dcoOn = true
	b.mu.Unlock()
	return dcoProvider{b}
}

// dcoCallTimeout bounds each call to netcfg about the offloaded peer.
const dcoCallTimeout = 10 * time.Second

// dcoProvider is the engine's data channel offload over netcfg's
// <device>/dco object: NewPeer creates the kernel's ovpn device with the
// pushed network settings and hands it the connected socket.
type dcoProvider struct{ b *Backend }

func (p dcoProvider) NewPeer(ctx context.Context, peer engine.DCOPeer) (engine.DCOPlane, error) {
	b := p.b
	sock, ok := peer.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("the transport socket (%T) has no file descriptor to hand over", peer.Conn)
	}
	b.mu.Lock()
	cfg := b.netOv.apply(peer.Net)
	b.mu.Unlock()
	vpn4 := cfg.Gateway4
	if cfg.Peer4.IsValid() {
		vpn4 = cfg.Peer4
	}
	dev, err := netcfgclient.NewClient(b.srv.Conn()).OpenDCO(ctx, b.token, dcoDeviceName(), cfg,
		netcfgclient.DCOPeer{ID: peer.PeerID, Socket: sock, Remote: peer.Remote, VPN4: vpn4, VPN6: cfg.Gateway6})
	if err != nil {
		return nil, fmt.Errorf("open DCO device: %w", err)
	}
	b.mu.Lock()
	old := b.tun
	b.tun, b.dcoDev = nil, dev
	b.devicePath, b.deviceName = dev.Path(), dev.Name()
	stopping := b.stopping
	b.mu.Unlock()
	if old != nil {
		_ = old.Close() // the TUN device of an earlier connection
	}
	if stopping {
		b.closeTun()
		return nil, errors.New("backend is shutting down")
	}
	b.log.Info("data channel offloaded to the kernel", "device", dev.Name(), "peer_id", peer.PeerID)
	return &dcoPlane{b: b, dev: dev}, nil
}

// dcoDeviceName names the ovpn device after the backend's process, which
// runs one session: unique while it lives, and under IFNAMSIZ.
func dcoDeviceName() string { return fmt.Sprintf("ovpn-dco%d", os.Getpid()%10000000) }

// dcoPlane is one offloaded peer as the engine drives it.
type dcoPlane struct {
	b   *Backend
	dev *netcfgclient.DCODevice

	mu     sync.Mutex
	closed bool
	final  engine.PlaneStats
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dcoCallTimeout)
}

func (p *dcoPlane) InstallKey(slot engine.KeySlot, dk *engine.DataKey) error {
	alg, ok := dco.CipherFor(strings.ToUpper(dk.Cipher))
	if !ok || !dk.AEAD() || len(dk.Encrypt.NonceTail) != dco.NonceTailSize || len(dk.Decrypt.NonceTail) != dco.NonceTailSize {
		return fmt.Errorf("install key: the kernel cannot run data cipher %s", dk.Cipher)
	}
	k := dco.KeyConf{KeyID: dk.KeyID, Cipher: alg,
		Encrypt: dco.KeyDir{Key: slices.Clone(dk.Encrypt.CipherKey), NonceTail: [dco.NonceTailSize]byte(dk.Encrypt.NonceTail)},
		Decrypt: dco.KeyDir{Key: slices.Clone(dk.Decrypt.CipherKey), NonceTail: [dco.NonceTailSize]byte(dk.Decrypt.NonceTail)}}
	defer func() { clear(k.Encrypt.Key); clear(k.Decrypt.Key) }()
	ctx, cancel := callCtx()
	defer cancel()
	return p.dev.NewKey(ctx, dco.Slot(slot), k)
}

func (p *dcoPlane) SwapKeys() error {
	ctx, cancel := callCtx()
	defer cancel()
	return p.dev.SwapKeys(ctx)
}

func (p *dcoPlane) DeleteKey(slot engine.KeySlot) error {
	ctx, cancel := callCtx()
	defer cancel()
	return p.dev.DelKey(ctx, dco.Slot(slot))
}

// seconds rounds up: the kernel's keepalive counts whole seconds.
func seconds(d time.Duration) uint32 {
	return uint32(min((d+time.Second-1)/time.Second, 1<<32-1))
}

func (p *dcoPlane) SetKeepalive(interval, timeout time.Duration) error {
	ctx, cancel := callCtx()
	defer cancel()
	return p.dev.SetKeepalive(ctx, seconds(max(interval, 0)), seconds(max(timeout, 0)))
}

func (p *dcoPlane) Stats() (engine.PlaneStats, error) {
	p.mu.Lock()
	closed, final := p.closed, p.final
	p.mu.Unlock()
	if closed {
		return final, nil
	}
	return p.read()
}

// read asks the kernel for the peer's counters, named by netcfg as the
// session statistics they feed: the device's receive is TUN_*_OUT.
func (p *dcoPlane) read() (engine.PlaneStats, error) {
	ctx, cancel := callCtx()
	defer cancel()
	m, err := p.dev.PeerStats(ctx)
	if err != nil {
		return engine.PlaneStats{}, err
	}
	return engine.PlaneStats{
		LinkRxBytes: m["BYTES_IN"], LinkTxBytes: m["BYTES_OUT"], LinkRxPackets: m["PACKETS_IN"], LinkTxPackets: m["PACKETS_OUT"],
		VPNRxBytes: m["TUN_BYTES_OUT"], VPNTxBytes: m["TUN_BYTES_IN"], VPNRxPackets: m["TUN_PACKETS_OUT"], VPNTxPackets: m["TUN_PACKETS_IN"],
	}, nil
}

// Deleted never fires: netcfg does not forward the kernel's PEER_DEL_NTF
// yet, so a dead server is noticed by the control channel's timers only.
func (p *dcoPlane) Deleted() <-chan string { return nil }

// Close reads the final counters, then destroys the device (peer, keys,
// routes and DNS go with it).
func (p *dcoPlane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	final, serr := p.read()
	p.mu.Lock()
	p.closed, p.final = true, final
	p.mu.Unlock()
	if serr != nil {
		p.b.log.Debug("final statistics of the offloaded peer", "err", serr)
	}
	b := p.b
	b.mu.Lock()
	if b.dcoDev == p.dev {
		b.dcoDev = nil
	}
	b.mu.Unlock()
	return p.dev.Close()
}
