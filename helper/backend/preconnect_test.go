package backend

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

// recorder is a slog.Handler that keeps the messages it handles.
type recorder struct {
	mu   *sync.Mutex
	msgs *[]string
	pre  string // from WithAttrs: the first attribute's value
}

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	*r.msgs = append(*r.msgs, r.pre+rec.Message)
	r.mu.Unlock()
	return nil
}
func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.pre = as[0].Value.String() + ":"
	return r
}
func (r recorder) WithGroup(string) slog.Handler { return r }

// A held engine's session log: nothing reaches the signals until the
// Connect adopts it, then everything in order (derived loggers included)
// and afterwards straight through; a discarded one's records never go.
func TestHeldLog(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	rec := recorder{mu: &mu, msgs: &msgs}
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(msgs)
	}

	l := &heldLog{held: true}
	log := slog.New(heldHandler{inner: rec, l: l})
	log.Info("one")
	log.With("server", "s").Info("two")
	if m := got(); len(m) != 0 {
		t.Fatalf("passed on while held: %q", m)
	}
	l.release()
	log.Debug("three")
	if m := got(); !slices.Equal(m, []string{"one", "s:two", "three"}) {
		t.Errorf("after release: %q", m)
	}

	msgs = nil
	l = &heldLog{held: true}
	log = slog.New(heldHandler{inner: rec, l: l})
	log.Info("dropped")
	l.drop()
	log.Info("after the drop")
	if m := got(); len(m) != 0 {
		t.Errorf("a discarded engine's records went out: %q", m)
	}
}
