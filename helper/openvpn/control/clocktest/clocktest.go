// Package clocktest holds the fake clock the control session's and the
// engine's timer tests inject: time moves only when a test says so.
package clocktest

import (
	"sync"
	"time"
)

// Fake is a control.Clock whose time a test sets and advances.
type Fake struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a fake clock standing at t.
func New(t time.Time) *Fake { return &Fake{t: t} }

// Now is the clock's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Advance moves the clock on by d and returns the new time.
func (f *Fake) Advance(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	return f.t
}

// Set puts the clock at t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t
}
