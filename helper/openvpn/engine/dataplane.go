package engine

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/udpbatch"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// maxTunPacket is the largest TUN packet the data path handles.
const maxTunPacket = 65535

// dataPlane owns the TUN device and its reader goroutine for the whole Run;
// connection attempts plug their transport and send key in through tx.
type dataPlane struct {
	c *Client

	// tun is owned by the control plane (Run's goroutine); the socket
	// reader of the current attempt reads it through tunW.
	tun    TunDevice
	tunW   atomic.Pointer[tunWriter]
	tunCfg netconf.Config
	tunWG  sync.WaitGroup

	tx       atomic.Pointer[txPath] // nil while not connected: TUN packets are dropped
	lastSent atomic.Int64           // unix nanos of the last data-channel packet sent
}

// txPath is the send side of one connection: the socket, the key packets
// are sealed with and the compression framing. Its mutex serialises Seal
// (one sender at a time per key) between the TUN reader and pings.
type txPath struct {
	mu   sync.Mutex
	tr   transport.Conn
	key  *datachan.Key
	comp framing
	buf  []byte
	bw   *udpbatch.Writer // nil: one WritePacket per packet
}

func newTxPath(tr transport.Conn, key *datachan.Key, comp framing) *txPath {
	return &txPath{tr: tr, key: key, comp: comp,
		buf: make([]byte, 0, key.SealBufferLen(maxTunPacket+frameHeadroom+frameTailroom))}
}

// send seals a payload that is not in a buffer with framing room (pings,
// OCC messages).
func (d *dataPlane) send(plain []byte) error {
	var buf [frameHeadroom + 64 + frameTailroom]byte
	if len(plain) > 64 {
		return fmt.Errorf("internal data message of %d bytes", len(plain))
	}
	n := copy(buf[frameHeadroom:], plain)
	return d.sendFramed(buf[:], frameHeadroom, n)
}

// sendFramed seals the payload buf[off:off+n], which has frameHeadroom
// bytes before it and frameTailroom after it for the compression framing
// (which may rewrite the payload in place).
func (d *dataPlane) sendFramed(buf []byte, off, n int) error {
	tx := d.tx.Load()
	if tx == nil {
		return nil
	}
	tx.mu.Lock()
	n, err := tx.sealQueue(buf, off, n)
	if err == nil {
		err = tx.flush()
	}
	tx.mu.Unlock()
	if err != nil {
		return err
	}
	d.lastSent.Store(d.c.now().UnixNano())
	d.c.ctr.bytesOut.Add(int64(n))
	d.c.ctr.pktsOut.Add(1)
	return nil
}

func (d *dataPlane) sendPing() error {
	return d.send(datachan.PingPayload[:])
}

// occExit is an OCC "EXIT" message: the OCC magic followed by opcode 6. It
// tells a server without cc-exit support that the client is leaving.
var occExit = []byte{0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c, 6}

// startTun starts the goroutine that reads the TUN device, in batches
// where the device batches (tunio), and sends each packet through the
// current tx path. It stops when the device is closed.
func (d *dataPlane) startTun(tun TunDevice, cfg netconf.Config) {
	d.tun, d.tunCfg = tun, cfg
	dev, clamp := unwrapMSS(tun)
	vnet, err := tunVnet(dev, !d.c.offloads().noTUN)
	if err != nil {
		d.c.log.Debug("tun offload not enabled", "err", err)
	}
	if vnet {
		d.tunW.Store(&tunWriter{TunDevice: dev, vnet: true, clamp: clamp})
		d.tunWG.Add(1)
		go func() {
			defer d.tunWG.Done()
			d.readVnet(dev, clamp)
		}()
		return
	}
	d.tunW.Store(&tunWriter{TunDevice: tun})
	d.tunWG.Add(1)
	go func() {
		defer d.tunWG.Done()
		dev := tunio.Batched(tun)
		bufs, sizes := make([][]byte, dev.BatchSize()), make([]int, dev.BatchSize())
		for i := range bufs {
			// Packets are read at tunio.Headroom; the framing's tailroom
			// is behind len, inside cap.
			bufs[i] = make([]byte, tunio.Headroom+maxTunPacket+frameTailroom)[:tunio.Headroom+maxTunPacket]
		}
		for {
			k, err := dev.ReadBatch(bufs, sizes, tunio.Headroom)
			if err != nil {
				if !errors.Is(err, os.ErrClosed) {
					d.c.log.Debug("tun read ended", "err", err)
				}
				return
			}
			d.c.ctr.tunReads.Add(1)
			for i, n := range sizes[:k] {
				if n == 0 {
					continue
				}
				d.c.ctr.tunBytesIn.Add(int64(n))
				d.c.ctr.tunPktsIn.Add(1)
				if err := d.sendFramed(bufs[i], tunio.Headroom, n); err != nil {
					d.c.log.Debug("data send failed", "err", err)
				}
			}
		}
	}()
}

// The framing's headroom is part of the TUN read's.
var _ [tunio.Headroom - frameHeadroom]struct{}

// closeTun closes the device and waits for its reader.
func (d *dataPlane) closeTun() {
	if d.tun == nil {
		return
	}
	d.tx.Store(nil)
	d.tunW.Store(nil)
	if err := d.tun.Close(); err != nil {
		d.c.log.Debug("tun close", "err", err)
	}
	d.tunWG.Wait()
	d.tun = nil
}

// tunWriter wraps the device so it can sit behind an atomic pointer.
// With vnet, packets carry a virtio_net_hdr and go through the socket
// reader's tunSink, which applies the MSS clamp (mssTun cannot).
type tunWriter struct {
	TunDevice
	vnet  bool
	clamp *mssClamp
}

// rxKeys are the data-channel keys a connection accepts, by key_id: the
// current one and, after a renegotiation, the lame duck.
type rxKeys [8]*datachan.Key

// socketReader reads every packet of one connection: data packets are
// opened and written to the TUN device here, control packets are handed to
// the control loop. It returns when the transport is closed. It reads in
// batches (recvmmsg on a plain UDP transport): one syscall for every
// datagram that queued up while the previous batch was being decrypted.
func (a *attempt) socketReader() {
	defer a.wg.Done()
	rx := a.newRxState()
	b := transport.Batched(a.tr)
	bufs, sizes := make([][]byte, b.BatchSize()), make([]int, b.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, maxPacket)
	}
	for {
		n, err := b.ReadBatch(bufs, sizes)
		if err != nil {
			a.readEnded(err)
			return
		}
		for i := range n {
			if sizes[i] > 0 {
				a.handleDatagram(bufs[i][:sizes[i]], rx)
			}
		}
		rx.sink.flush() // one device write per coalesced run
	}
}

func (a *attempt) readEnded(err error) {
	select {
	case a.readErr <- err:
	case <-a.done:
	}
}

// rxState is what the receive path keeps across packets.
type rxState struct {
	fl   *transport.Float // nil unless the profile says float
	dec  *decompressor    // nil: compressed packets are refused
	sink *tunSink         // for a device with a virtio_net_hdr
}

func (a *attempt) newRxState() *rxState {
	rx := &rxState{sink: newTunSink(a.dp)}
	rx.fl, _ = a.tr.(*transport.Float)
	if a.c.cfg.Profile.Decompress() {
		rx.dec = &decompressor{count: &a.c.ctr.decompressed}
	}
	return rx
}

// handleDatagram processes one received packet of the transport.
func (a *attempt) handleDatagram(pkt []byte, rx *rxState) {
	fl := rx.fl
	a.c.ctr.bytesIn.Add(int64(len(pkt)))
	a.c.ctr.pktsIn.Add(1)
	op, keyID := wire.SplitHeader(pkt[0])
	if fl != nil && !fl.FromPeer() && !op.IsData() {
		return // from elsewhere and not authenticated (net_float.go)
	}
	if !op.IsData() {
		cp := append([]byte(nil), pkt...)
		select {
		case a.ctlIn <- cp:
		default: // control loop busy: the reliability layer recovers
		}
		return
	}
	keys := a.rx.Load()
	if keys == nil || keys[keyID] == nil {
		return
	}
	// Decrypted in place: the plaintext overwrites the ciphertext in the
	// read buffer (which has room for the tag behind it), no second buffer.
	p, err := keys[keyID].Open(pkt[:0], pkt)
	if err != nil {
		a.dropped.Add(1)
		return
	}
	if fl != nil && !fl.FromPeer() {
		// Authenticated by the data key: the server moved (float).
		old, now := fl.Follow()
		a.log.Info("server address changed (float)", "from", old, "to", now)
	}
	if p, err = a.comp.unframe(p, rx.dec); err != nil {
		a.dropped.Add(1)
		a.log.Debug("data packet dropped", "err", err)
		return
	}
	a.lastRecv.Store(a.c.now().UnixNano())
	if bytes.Equal(p, datachan.PingPayload[:]) {
		return
	}
	tw := a.dp.tunW.Load()
	if tw == nil || len(p) == 0 {
		return
	}
	if tw.vnet {
		if err := rx.sink.add(tw, p); err != nil {
			a.c.log.Debug("tun write failed", "err", err)
			return
		}
		a.c.ctr.tunBytesOut.Add(int64(len(p)))
		a.c.ctr.tunPktsOut.Add(1)
		return
	}
	if _, err := tw.Write(p); err != nil {
		a.c.log.Debug("tun write failed", "err", err)
		return
	}
	a.c.ctr.tunBytesOut.Add(int64(len(p)))
	a.c.ctr.tunPktsOut.Add(1)
	a.c.ctr.tunWrites.Add(1)
}

func fmtDuration(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
}
