package busobj

import (
	"context"
	"runtime"
)

// HoldCredentials makes s's questions for credentials wait, before they
// are sent, until n other callers wait for the same one (or ctx ends).
func HoldCredentials(ctx context.Context, s *Server, n int) {
	s.credMu.Lock()
	defer s.credMu.Unlock()
	s.credHook = func(l *credLookup) {
		for ctx.Err() == nil {
			s.credMu.Lock()
			w := l.waiters
			s.credMu.Unlock()
			if w >= n {
				return
			}
			runtime.Gosched()
		}
	}
}
