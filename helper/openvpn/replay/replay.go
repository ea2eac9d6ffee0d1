// Package replay is the sliding-window replay filter OpenVPN applies to
// data-channel packet ids and to the replay packet ids of tls-auth and
// tls-crypt control packets.
//
// A Window accepts a new highest id, accepts an older id that is still
// inside the window and was not seen, and rejects duplicates, ids that fell
// out of the window and id 0 (senders start counting at 1). It is not safe
// for concurrent use; each receive path owns its window.
package replay

import "time"

// DefaultSize is OpenVPN's default --replay-window (DEFAULT_SEQ_BACKTRACK).
const DefaultSize = 64

// DefaultTime is OpenVPN's default replay-window time (DEFAULT_TIME_BACKTRACK).
const DefaultTime = 15 * time.Second

// Window remembers which of the last Size ids were seen.
type Window struct {
	size uint64
	last uint64   // highest id accepted so far; 0 before the first
	ring []uint64 // bit (id % 64) of word (id/64 % len) marks id as seen

	// With a time limit: when each id in the ring was accepted (unix ns).
	maxAge time.Duration
	now    func() time.Time
	times  []int64
}

// SetTimeLimit adds OpenVPN's time window: an id below the highest is
// also refused once any higher id was accepted more than maxAge ago (a
// packet cannot be that late). now is the clock; maxAge <= 0 turns the
// limit off. Call it before the first Accept.
func (w *Window) SetTimeLimit(maxAge time.Duration, now func() time.Time) {
	if maxAge <= 0 || now == nil {
		w.maxAge, w.now, w.times = 0, nil, nil
		return
	}
	w.maxAge, w.now = maxAge, now
	w.times = make([]int64, len(w.ring)*64)
}

// tooLate reports whether an id below the highest arrives after the time
// limit: some higher id was accepted more than maxAge ago.
func (w *Window) tooLate(id uint64) bool {
	if w.now == nil || id >= w.last {
		return false
	}
	limit := w.now().Add(-w.maxAge).UnixNano()
	n := uint64(len(w.ring))
	nt := uint64(len(w.times))
	for j := id + 1; j <= w.last; j++ {
		if w.ring[(j/64)%n]&(1<<(j%64)) != 0 && w.times[j%nt] < limit {
			return true
		}
	}
	return false
}

// NewWindow returns a window that accepts ids up to size-1 below the
// highest one seen. size <= 0 selects DefaultSize.
func NewWindow(size int) *Window {
	if size <= 0 {
		size = DefaultSize
	}
	// One spare word so the word holding the highest id and the words
	// reaching back size ids never overlap in the ring.
	words := (size+63)/64 + 1
	return &Window{size: uint64(size), ring: make([]uint64, words)}
}

// Size is the number of ids the window reaches back.
func (w *Window) Size() int { return int(w.size) }

// Highest returns the highest id accepted so far, 0 if none.
func (w *Window) Highest() uint64 { return w.last }

// Check reports whether Accept(id) would accept id, without marking it.
// Callers that authenticate packets use it to skip work on obvious
// replays; they still call Accept after authentication.
func (w *Window) Check(id uint64) bool {
	if id == 0 {
		return false
	}
	if id > w.last {
		return true
	}
	if w.last-id >= w.size {
		return false
	}
	n := uint64(len(w.ring))
	return w.ring[(id/64)%n]&(1<<(id%64)) == 0 && !w.tooLate(id)
}

// Accept checks id and, if it is acceptable, marks it as seen. Only call it
// for packets that were authenticated: an accepted forged id would move the
// window.
func (w *Window) Accept(id uint64) bool {
	if id == 0 {
		return false
	}
	n := uint64(len(w.ring))
	if id > w.last {
		// Clear the words the window slides over.
		from, to := w.last/64, id/64
		steps := to - from
		if steps > n {
			steps = n
		}
		for i := uint64(1); i <= steps; i++ {
			w.ring[(from+i)%n] = 0
		}
		w.last = id
	} else if w.last-id >= w.size || w.tooLate(id) {
		return false
	}
	word, bit := (id/64)%n, uint64(1)<<(id%64)
	if w.ring[word]&bit != 0 {
		return false
	}
	w.ring[word] |= bit
	if w.now != nil {
		w.times[id%uint64(len(w.times))] = w.now().UnixNano()
	}
	return true
}

// Reset forgets everything, as for a fresh key.
func (w *Window) Reset() {
	w.last = 0
	clear(w.ring)
	clear(w.times)
}
