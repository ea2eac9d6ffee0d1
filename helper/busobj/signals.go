package busobj

import (
	"sync"

	"github.com/godbus/dbus/v5"
)

// signalHandler replaces godbus's default signal delivery, which starts a
// goroutine per signal whenever a channel is full (unbounded, and the
// signals then arrive in any order). Here each channel (conn.Signal) has
// one goroutine feeding it from a FIFO, so signals arrive in bus order;
// a sender with SignalsPerSender signals already waiting for a channel
// loses its next ones for that channel. The bus driver's own signals are
// never dropped (NameOwnerChanged drives the cleanup of gone callers).
type signalHandler struct {
	perSender int

	mu     sync.Mutex
	closed bool
	chans  []*signalQueue
}

type signalQueue struct {
	ch   chan<- *dbus.Signal
	done chan struct{}
	wake chan struct{} // 1-buffered: something was queued
	exit chan struct{} // closed when the feeding goroutine returned

	mu      sync.Mutex
	queue   []*dbus.Signal
	waiting map[string]int // queued signals by sender
}

func (h *signalHandler) DeliverSignal(_, _ string, sig *dbus.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, q := range h.chans {
		q.push(sig, h.perSender)
	}
}

func (q *signalQueue) push(sig *dbus.Signal, perSender int) {
	q.mu.Lock()
	if sig.Sender != "org.freedesktop.DBus" && q.waiting[sig.Sender] >= perSender {
		q.mu.Unlock()
		return
	}
	q.waiting[sig.Sender]++
	q.queue = append(q.queue, sig)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// feed hands the queued signals to the channel in order until done.
func (q *signalQueue) feed() {
	defer close(q.exit)
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		sig := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		select {
		case q.ch <- sig:
		case <-q.done:
			return
		}
		q.mu.Lock()
		if q.waiting[sig.Sender]--; q.waiting[sig.Sender] <= 0 {
			delete(q.waiting, sig.Sender)
		}
		q.mu.Unlock()
	}
}

func (h *signalHandler) AddSignal(ch chan<- *dbus.Signal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	q := &signalQueue{ch: ch, done: make(chan struct{}), wake: make(chan struct{}, 1), exit: make(chan struct{}), waiting: map[string]int{}}
	h.chans = append(h.chans, q)
	go q.feed()
}

func (h *signalHandler) RemoveSignal(ch chan<- *dbus.Signal) {
	h.mu.Lock()
	var gone []*signalQueue
	kept := h.chans[:0]
	for _, q := range h.chans {
		if q.ch == ch {
			gone = append(gone, q)
		} else {
			kept = append(kept, q)
		}
	}
	clear(h.chans[len(kept):])
	h.chans = kept
	h.mu.Unlock()
	for _, q := range gone {
		close(q.done)
		<-q.exit
	}
}

// Terminate runs when the connection closes: like godbus's default, it
// closes every channel still registered.
func (h *signalHandler) Terminate() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	all := h.chans
	h.chans = nil
	h.mu.Unlock()
	for _, q := range all {
		close(q.done)
		<-q.exit
		close(q.ch)
	}
}
