// Package reliable is OpenVPN's control-channel reliability layer for one
// key_id: message packet ids, per-packet acknowledgements, retransmission
// with exponential backoff and early resend, and an in-order receive window.
//
// It is pure: no goroutines, no timers, no I/O. The caller feeds it received
// packets and the current time and asks it which packets to put on the wire,
// so it can be tested deterministically under any loss pattern. Session ids,
// key_id and wrapping are the caller's business.
package reliable

import (
	"errors"
	"fmt"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Defaults taken from OpenVPN 2.x (TLS_RELIABLE_N_SEND_BUFFERS,
// TLS_RELIABLE_N_REC_BUFFERS, --tls-timeout, N_ACK_RETRANSMIT).
const (
	DefaultSendWindow = 6
	DefaultRecvWindow = 12
	DefaultTimeout    = 2 * time.Second
	DefaultMaxTimeout = 64 * time.Second
	// FastRetransmitAcks is how many later packets must be acknowledged
	// before an unacknowledged packet is resent without waiting for its timer.
	FastRetransmitAcks = 3
	// maxPendingAcks bounds the acknowledgements kept for sending; a peer
	// replaying old packets cannot make it grow beyond this.
	maxPendingAcks = 64
)

// Config tunes a Layer; zero fields take the defaults above.
type Config struct {
	SendWindow int           // packets in flight
	RecvWindow int           // packets buffered ahead of the next expected one
	Timeout    time.Duration // first retransmission timeout
	MaxTimeout time.Duration // backoff cap
}

// Message is one reliably delivered control message.
type Message struct {
	Opcode  wire.Opcode
	Payload []byte
}

type outgoing struct {
	id         uint32
	op         wire.Opcode
	payload    []byte
	sent       bool      // at least once
	nextTry    time.Time // when to (re)send
	timeout    time.Duration
	laterAcked int // acks for later packets since the last send
}

type incoming struct {
	valid   bool
	op      wire.Opcode
	payload []byte
}

// Layer is the reliability state of one key_id in both directions.
type Layer struct {
	cfg Config

	nextSendID uint32
	backlog    []outgoing // queued, not yet in the window
	inflight   []outgoing // in the send window, ordered by id

	nextRecvID uint32
	recv       []incoming // ring: recv[(id-nextRecvID+head)%n]
	head       int
	ready      []Message // delivered in order, not yet taken by Next

	pendingAcks []uint32

	stats Stats
}

// Stats counts what the layer did, for logs and tests.
type Stats struct {
	Sent, Retransmitted, FastRetransmits int
	Received, Duplicates, OutOfWindow    int
	AcksSent, AcksReceived               int
}

// New returns a layer whose first message in each direction has id 0.
func New(cfg Config) *Layer {
	if cfg.SendWindow <= 0 {
		cfg.SendWindow = DefaultSendWindow
	}
	if cfg.RecvWindow <= 0 {
		cfg.RecvWindow = DefaultRecvWindow
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxTimeout < cfg.Timeout {
		cfg.MaxTimeout = max(DefaultMaxTimeout, cfg.Timeout)
	}
	return &Layer{cfg: cfg, recv: make([]incoming, cfg.RecvWindow)}
}

// Send queues a message for reliable delivery and returns its packet id.
// The payload is copied. Messages beyond the send window wait in order.
func (l *Layer) Send(op wire.Opcode, payload []byte) uint32 {
	id := l.nextSendID
	l.nextSendID++
	l.backlog = append(l.backlog, outgoing{id: id, op: op, payload: append([]byte(nil), payload...), timeout: l.cfg.Timeout})
	l.fillWindow()
	return id
}

func (l *Layer) fillWindow() {
	n := 0
	for n < len(l.backlog) && len(l.inflight) < l.cfg.SendWindow {
		l.inflight = append(l.inflight, l.backlog[n])
		n++
	}
	if n > 0 {
		l.backlog = append(l.backlog[:0], l.backlog[n:]...)
	}
}

// SetMaxTimeout changes the backoff cap, also for messages in flight. A
// client uses the first retransmission timeout as cap until the server
// answered at all, so a lost reset is resent steadily instead of after
// ever longer pauses.
func (l *Layer) SetMaxTimeout(d time.Duration) {
	if d < l.cfg.Timeout {
		d = l.cfg.Timeout
	}
	l.cfg.MaxTimeout = d
	for i := range l.inflight {
		l.inflight[i].timeout = min(l.inflight[i].timeout, d)
	}
}

// Result says what Receive did with a packet.
type Result int

const (
	// Accepted: a new message, buffered (and delivered if in order).
	Accepted Result = iota
	// AckOnly: an ACK_V1; its acknowledgements were processed.
	AckOnly
	// Duplicate: already received; re-acknowledged and dropped.
	Duplicate
	// OutOfWindow: too far ahead to buffer; dropped without an ACK so the
	// peer resends it later.
	OutOfWindow
)

func (r Result) String() string {
	switch r {
	case Accepted:
		return "accepted"
	case AckOnly:
		return "ack-only"
	case Duplicate:
		return "duplicate"
	case OutOfWindow:
		return "out-of-window"
	}
	return fmt.Sprintf("result(%d)", int(r))
}

// ErrNotControl is returned for packets that do not belong to the control channel.
var ErrNotControl = errors.New("not a control-channel packet")

// Receive processes an authenticated control packet of this key_id: its
// acknowledgements and, unless it is an ACK_V1, its message. The payload is
// copied, so p may alias a reused buffer.
func (l *Layer) Receive(p *wire.ControlPacket, now time.Time) (Result, error) {
	if !p.Opcode.IsControl() {
		return 0, fmt.Errorf("reliable: %w: %v", ErrNotControl, p.Opcode)
	}
	l.processAcks(p.Acks, now)
	if !p.Opcode.HasPacketID() {
		return AckOnly, nil
	}
	id := p.PacketID
	off := id - l.nextRecvID // wraps for ids below the window
	if int64(off) >= int64(l.cfg.RecvWindow) {
		if id-l.nextRecvID > 1<<31 { // behind the window: old duplicate
			l.stats.Duplicates++
			l.addAck(id)
			return Duplicate, nil
		}
		l.stats.OutOfWindow++
		return OutOfWindow, nil
	}
	slot := &l.recv[(l.head+int(off))%len(l.recv)]
	l.addAck(id)
	if slot.valid {
		l.stats.Duplicates++
		return Duplicate, nil
	}
	l.stats.Received++
	slot.valid = true
	slot.op = p.Opcode
	slot.payload = append(slot.payload[:0], p.Payload...)
	l.deliver()
	return Accepted, nil
}

func (l *Layer) deliver() {
	for {
		slot := &l.recv[l.head]
		if !slot.valid {
			return
		}
		l.ready = append(l.ready, Message{Opcode: slot.op, Payload: slot.payload})
		*slot = incoming{}
		l.head = (l.head + 1) % len(l.recv)
		l.nextRecvID++
	}
}

// Next returns the next in-order message, if any. The caller owns its payload.
func (l *Layer) Next() (Message, bool) {
	if len(l.ready) == 0 {
		return Message{}, false
	}
	m := l.ready[0]
	l.ready[0] = Message{}
	l.ready = l.ready[1:]
	if len(l.ready) == 0 {
		l.ready = nil
	}
	return m, true
}

func (l *Layer) addAck(id uint32) {
	for _, a := range l.pendingAcks {
		if a == id {
			return
		}
	}
	if len(l.pendingAcks) >= maxPendingAcks {
		return // the peer will resend and get its ACK then
	}
	l.pendingAcks = append(l.pendingAcks, id)
}

func (l *Layer) processAcks(acks []uint32, now time.Time) {
	for _, a := range acks {
		idx := -1
		for i := range l.inflight {
			if l.inflight[i].id == a && l.inflight[i].sent {
				idx = i
				break
			}
		}
		if idx < 0 {
			continue // unknown or already acknowledged
		}
		l.stats.AcksReceived++
		// Earlier packets still in flight saw a later one arrive: after
		// FastRetransmitAcks of those, resend without waiting for the timer.
		for i := 0; i < idx; i++ {
			o := &l.inflight[i]
			o.laterAcked++
			if o.laterAcked >= FastRetransmitAcks && o.nextTry.After(now) {
				o.nextTry = now
				o.laterAcked = 0
				l.stats.FastRetransmits++
			}
		}
		l.inflight = append(l.inflight[:idx], l.inflight[idx+1:]...)
	}
	l.fillWindow()
}

// HasPendingAcks reports whether received packets still need acknowledging.
func (l *Layer) HasPendingAcks() bool { return len(l.pendingAcks) > 0 }

// Output appends to dst the packets due at now: first sends and
// retransmissions of messages with up to wire.MaxAcksPerControl pending
// acknowledgements piggybacked, then ACK_V1 packets (up to
// wire.MaxAcksPerAck each) for the rest. Only Opcode, PacketID, Acks and
// Payload are set; Payload aliases the layer's copy and stays valid until the
// message is acknowledged.
func (l *Layer) Output(now time.Time, dst []wire.ControlPacket) []wire.ControlPacket {
	dst = l.OutputMessages(now, dst)
	for len(l.pendingAcks) > 0 {
		dst = append(dst, wire.ControlPacket{Opcode: wire.OpAckV1, Acks: l.takeAcks(wire.MaxAcksPerAck)})
	}
	return dst
}

// OutputMessages is Output without the ACK_V1 packets: acknowledgements
// ride only on messages that go out anyway, the rest wait. A caller whose
// TLS session is still working on what arrived uses it, so its answer
// carries the acknowledgements instead of a bare ACK ahead of it.
func (l *Layer) OutputMessages(now time.Time, dst []wire.ControlPacket) []wire.ControlPacket {
	for i := range l.inflight {
		o := &l.inflight[i]
		if o.sent && o.nextTry.After(now) {
			continue
		}
		if o.sent {
			l.stats.Retransmitted++
		} else {
			l.stats.Sent++
		}
		o.sent = true
		o.nextTry = now.Add(o.timeout)
		o.timeout = min(2*o.timeout, l.cfg.MaxTimeout)
		o.laterAcked = 0
		dst = append(dst, wire.ControlPacket{Opcode: o.op, PacketID: o.id, Payload: o.payload, Acks: l.takeAcks(wire.MaxAcksPerControl)})
	}
	return dst
}

func (l *Layer) takeAcks(n int) []uint32 {
	n = min(n, len(l.pendingAcks))
	if n == 0 {
		return nil
	}
	acks := append([]uint32(nil), l.pendingAcks[:n]...)
	l.pendingAcks = append(l.pendingAcks[:0], l.pendingAcks[n:]...)
	l.stats.AcksSent += n
	return acks
}

// Deadline returns when Output next has a retransmission to emit; ok is
// false when nothing is in flight. Pending acknowledgements and unsent
// messages are due immediately, which HasPendingAcks and Unsent report.
func (l *Layer) Deadline() (t time.Time, ok bool) {
	for i := range l.inflight {
		o := &l.inflight[i]
		if !o.sent {
			continue
		}
		if !ok || o.nextTry.Before(t) {
			t, ok = o.nextTry, true
		}
	}
	return t, ok
}

// Unsent reports whether a message in the window has never been sent.
func (l *Layer) Unsent() bool {
	for i := range l.inflight {
		if !l.inflight[i].sent {
			return true
		}
	}
	return false
}

// Idle reports whether every queued message was acknowledged.
func (l *Layer) Idle() bool { return len(l.inflight) == 0 && len(l.backlog) == 0 }

// Queued returns how many messages are unacknowledged (in flight or waiting).
func (l *Layer) Queued() int { return len(l.inflight) + len(l.backlog) }

// Stats returns counters of what the layer did so far.
func (l *Layer) Stats() Stats { return l.stats }
