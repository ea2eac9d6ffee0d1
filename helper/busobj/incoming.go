package busobj

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/stackreserve"
)

// Limits bound the work one sender (one unique bus name) can put on the
// server. The zero value means DefaultLimits.
type Limits struct {
	// WorkersPerSender is how many calls of one sender run at once; they
	// start in the order they arrived.
	WorkersPerSender int
	// QueuePerSender is how many more calls of one sender may wait; a call
	// beyond that is refused at once with ErrBusy's error.
	QueuePerSender int
	// SignalsPerSender is how many signals of one sender may wait for each
	// signal channel (conn.Signal) before that sender's next signal is
	// dropped. Signals of the bus itself (NameOwnerChanged) are never
	// dropped.
	SignalsPerSender int
}

// DefaultLimits: with them a sender has at most 4 goroutines in the server
// and 64 calls waiting, whatever it sends.
var DefaultLimits = Limits{WorkersPerSender: 4, QueuePerSender: 64, SignalsPerSender: 256}

func (l Limits) withDefaults() Limits {
	if l.WorkersPerSender <= 0 {
		l.WorkersPerSender = DefaultLimits.WorkersPerSender
	}
	if l.QueuePerSender <= 0 {
		l.QueuePerSender = DefaultLimits.QueuePerSender
	}
	if l.SignalsPerSender <= 0 {
		l.SignalsPerSender = DefaultLimits.SignalsPerSender
	}
	return l
}

// ErrBusy is the error a call gets when its sender already has
// QueuePerSender calls waiting.
func ErrBusy(queued int) *dbus.Error {
	return api.Error(api.DomainRequest, fmt.Sprintf("Too many calls pending from this connection (limit %d); try again later", queued))
}

// senderQueue is the work of one sender: calls waiting in arrival order,
// the number of workers running them, and the context every call of the
// sender carries (cancelled when the sender leaves the bus).
type senderQueue struct {
	ctx     context.Context
	cancel  context.CancelFunc
	pending []*dbus.Message
	running int
}

// intercept sees every incoming message on godbus's reader goroutine, in
// bus order, before godbus dispatches it. Method calls are queued here
// (per sender) and hidden from godbus by clearing their type: godbus would
// otherwise run each on a goroutine of its own, without bound or order.
// It must never block: the reader also delivers replies to our own calls.
func (s *Server) intercept(msg *dbus.Message) {
	switch msg.Type {
	case dbus.TypeMethodCall:
		s.enqueue(msg)
		msg.Type = 0 // godbus's inWorker ignores a message of no known type
	case dbus.TypeSignal:
		if header[string](msg, dbus.FieldSender) != "org.freedesktop.DBus" || header[string](msg, dbus.FieldMember) != "NameOwnerChanged" || len(msg.Body) != 3 {
			return
		}
		name, _ := msg.Body[0].(string)
		newOwner, _ := msg.Body[2].(string)
		s.owners.changed(name, newOwner)
		if newOwner == "" && strings.HasPrefix(name, ":") {
			s.senderLeft(name)
		}
	}
}

func (s *Server) enqueue(msg *dbus.Message) {
	sender := header[string](msg, dbus.FieldSender)
	s.qMu.Lock()
	if s.closed {
		s.qMu.Unlock()
		closeFDs(msg.Body)
		return
	}
	q := s.senders[sender]
	if q == nil {
		ctx, cancel := context.WithCancel(s.ctx)
		q = &senderQueue{ctx: ctx, cancel: cancel}
		s.senders[sender] = q
	}
	if q.running < s.limits.WorkersPerSender {
		q.running++
		s.wg.Add(1)
		go s.work(sender, q, msg)
		s.qMu.Unlock()
		return
	}
	if len(q.pending) >= s.limits.QueuePerSender {
		s.qMu.Unlock()
		s.refuse(msg)
		return
	}
	q.pending = append(q.pending, msg)
	s.qMu.Unlock()
}

// work runs msg and then the sender's waiting calls until none is left.
func (s *Server) work(sender string, q *senderQueue, msg *dbus.Message) {
	// Handlers encode their replies and signals through godbus's
	// reflection, deep enough to grow a new goroutine's stack three times.
	stackreserve.Reserve16K()
	defer s.wg.Done()
	for {
		s.handleMessage(q.ctx, msg)
		s.qMu.Lock()
		if len(q.pending) == 0 || q.ctx.Err() != nil {
			q.running--
			if q.running == 0 && len(q.pending) == 0 && s.senders[sender] == q {
				delete(s.senders, sender)
				q.cancel()
			}
			s.qMu.Unlock()
			return
		}
		msg = q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		s.qMu.Unlock()
	}
}

// senderLeft cancels the context of a vanished sender's running calls and
// drops its waiting ones (nobody is left to read their replies).
func (s *Server) senderLeft(sender string) {
	s.qMu.Lock()
	q := s.senders[sender]
	var dropped []*dbus.Message
	if q != nil {
		delete(s.senders, sender)
		q.cancel()
		dropped = q.pending
		q.pending = nil
	}
	s.qMu.Unlock()
	for _, m := range dropped {
		closeFDs(m.Body)
	}
}

// refuse answers a call over its sender's bound. It runs on the reader
// goroutine, so the reply goes to the refuser goroutine; when even that
// is backed up the call is dropped without a reply (the caller times out).
func (s *Server) refuse(msg *dbus.Message) {
	closeFDs(msg.Body)
	if msg.Flags&dbus.FlagNoReplyExpected != 0 {
		return
	}
	reply := replyTo(msg, nil, ErrBusy(s.limits.QueuePerSender))
	select {
	case s.refusals <- reply:
	default:
	}
}

func (s *Server) refuser() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case reply := <-s.refusals:
			if conn := s.Conn(); conn != nil {
				_ = conn.Send(reply, nil).Err
			}
		}
	}
}

// PendingSenders is the number of senders with calls running or waiting
// (for tests and debugging).
func (s *Server) PendingSenders() int {
	s.qMu.Lock()
	defer s.qMu.Unlock()
	return len(s.senders)
}

// handleMessage runs one queued call.
func (s *Server) handleMessage(ctx context.Context, msg *dbus.Message) {
	if header[string](msg, dbus.FieldInterface) == "org.freedesktop.DBus.Peer" {
		s.peer(msg)
		return
	}
	s.handle(ctx, s.Conn(), msg)
}

// peer answers org.freedesktop.DBus.Peer on every path, as GDBus does.
func (s *Server) peer(msg *dbus.Message) {
	var body []any
	var err error
	switch member := header[string](msg, dbus.FieldMember); member {
	case "Ping":
	case "GetMachineId":
		body = []any{machineID()}
	default:
		err = api.ErrUnknownMethod(member)
	}
	closeFDs(msg.Body)
	if msg.Flags&dbus.FlagNoReplyExpected != 0 {
		return
	}
	_ = s.Conn().Send(replyTo(msg, body, err), nil).Err
}

func machineID() string {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if id := strings.TrimSpace(string(b)); id != "" {
				return id
			}
		}
	}
	return ""
}
