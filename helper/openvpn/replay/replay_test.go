package replay

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestInOrder(t *testing.T) {
	w := NewWindow(0)
	for id := uint64(1); id < 1000; id++ {
		if !w.Accept(id) {
			t.Fatalf("in-order id %d rejected", id)
		}
		if w.Accept(id) {
			t.Fatalf("duplicate id %d accepted", id)
		}
	}
}

func TestZeroRejected(t *testing.T) {
	w := NewWindow(64)
	if w.Check(0) || w.Accept(0) {
		t.Fatal("id 0 accepted")
	}
}

func TestWindowEdges(t *testing.T) {
	w := NewWindow(64)
	if !w.Accept(100) {
		t.Fatal("first id rejected")
	}
	// 100-63 = 37 is the oldest id still inside a 64-packet window.
	if !w.Check(37) || !w.Accept(37) {
		t.Fatal("id at window edge rejected")
	}
	if w.Check(36) || w.Accept(36) {
		t.Fatal("id just outside window accepted")
	}
	if w.Accept(37) {
		t.Fatal("duplicate at edge accepted")
	}
	if !w.Accept(99) || w.Accept(99) {
		t.Fatal("reordered id handling wrong")
	}
	if w.Highest() != 100 {
		t.Fatalf("Highest = %d", w.Highest())
	}
}

func TestBigJumpClearsBitmap(t *testing.T) {
	w := NewWindow(64)
	for id := uint64(1); id <= 64; id++ {
		w.Accept(id)
	}
	// Jumping far ahead must forget old marks: ids that map onto the same
	// ring bits as 1..64 are new.
	base := uint64(64 * 1000)
	if !w.Accept(base + 64) {
		t.Fatal("jump rejected")
	}
	for id := base + 1; id < base+64; id++ {
		if !w.Accept(id) {
			t.Fatalf("id %d after jump rejected (stale bit)", id)
		}
	}
}

func TestRingWrap(t *testing.T) {
	// Walk across many ring cycles with small forward steps and late
	// arrivals; compare against a map-based model.
	for _, size := range []int{1, 7, 64, 65, 128, 1000} {
		w := NewWindow(size)
		seen := map[uint64]bool{}
		var high uint64
		r := rand.New(rand.NewPCG(1, uint64(size)))
		for i := 0; i < 20000; i++ {
			var id uint64
			switch r.IntN(4) {
			case 0:
				id = high + 1 + uint64(r.IntN(200))
			default:
				back := uint64(r.IntN(size + 10))
				if back >= high {
					id = high + 1
				} else {
					id = high - back
				}
			}
			want := id != 0 && !seen[id] && (id > high || high-id < uint64(size))
			if got := w.Check(id); got != want {
				t.Fatalf("size %d: Check(%d) = %v, want %v (high %d)", size, id, got, want, high)
			}
			if got := w.Accept(id); got != want {
				t.Fatalf("size %d: Accept(%d) = %v, want %v (high %d)", size, id, got, want, high)
			}
			if want {
				seen[id] = true
				high = max(high, id)
			}
		}
	}
}

func TestReset(t *testing.T) {
	w := NewWindow(64)
	w.Accept(5)
	w.Reset()
	if !w.Accept(5) || w.Highest() != 5 {
		t.Fatal("Reset did not forget")
	}
}

func BenchmarkAccept(b *testing.B) {
	w := NewWindow(64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Accept(uint64(i) + 1)
	}
}

// The time limit (replay-window n t): an older id is refused once a newer
// one was accepted more than t ago, even inside the window; newer ids
// still pass.
func TestWindowTimeLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	w := NewWindow(64)
	w.SetTimeLimit(15*time.Second, func() time.Time { return now })
	for _, id := range []uint64{1, 2, 5} {
		if !w.Accept(id) {
			t.Fatalf("id %d refused", id)
		}
	}
	now = now.Add(10 * time.Second)
	if !w.Check(4) || !w.Accept(4) {
		t.Fatal("id 4, 10 s after id 5 with t=15: refused")
	}
	now = now.Add(6 * time.Second) // id 5 is now 16 s old
	if w.Check(3) || w.Accept(3) {
		t.Fatal("id 3, 16 s after id 5 with t=15: accepted")
	}
	if !w.Accept(6) {
		t.Fatal("a new highest id refused after the time limit")
	}
	// Without a time limit the same late id would pass.
	w2 := NewWindow(64)
	for _, id := range []uint64{1, 2, 5} {
		w2.Accept(id)
	}
	if !w2.Accept(3) {
		t.Fatal("no time limit: id 3 refused")
	}
}
