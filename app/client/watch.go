package client

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
)

// StartWatch is what Session.Start follows (the session's forwarded events
// and the session manager's SESS_DESTROYED), subscribed before the session
// exists. Neither match rule names the session's path, so a front-end that
// makes the watch before NewTunnel has the rules in place when NewTunnel
// answers, and Start's LogForward, Ready and status read go out at once
// instead of behind two AddMatch calls. Pass it in StartOptions.Watch; Stop
// ends it (Start stops it too, once it used it).
type StartWatch struct {
	c        *Client
	path     atomic.Pointer[dbus.ObjectPath]
	taken    atomic.Bool
	cancel   context.CancelFunc
	stopOnce sync.Once

	events         <-chan Event
	eventsAdded    func() error
	destroyed      <-chan SessionManagerEvent
	destroyedAdded func() error
}

// WatchStart sends the match rules Session.Start needs without waiting
// for their answers (the bus handles one connection's messages in order:
// a NewTunnel sent after them reaches it after them). The watch ends with
// ctx, Stop or the connection.
func (c *Client) WatchStart(ctx context.Context) *StartWatch {
	wctx, cancel := context.WithCancel(ctx)
	w := &StartWatch{c: c, cancel: cancel}
	w.events, w.eventsAdded = subscribeForwarded(wctx, c, "", func() dbus.ObjectPath {
		if p := w.path.Load(); p != nil {
			return *p
		}
		return ""
	})
	w.destroyed, w.destroyedAdded = c.sessionManagerEvents(wctx)
	return w
}

// Stop removes the watch's match rules (in the background) and closes
// its channels.
func (w *StartWatch) Stop() {
	w.stopOnce.Do(w.cancel)
}

// take hands the watch to s's Start: only once, only for a session of
// the same Client.
func (w *StartWatch) take(s *Session) bool {
	if w == nil || w.c != s.c || !w.taken.CompareAndSwap(false, true) {
		return false
	}
	p := s.Path
	w.path.Store(&p)
	return true
}
