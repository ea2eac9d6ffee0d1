package dataplane

import (
	"sync"
	"sync/atomic"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
)

// Parallel crypto, as wireguard-go spreads it: the reading goroutine
// collects a batch (the segments of one TSO super-packet, the datagrams
// of one recvmmsg), takes its packet ids in order and hands it both to
// worker goroutines, which seal or open slices of it in place, and to an
// in-order queue, from which one goroutine finishes whole batches (writes
// them to the socket or the TUN device, checks the replay window) in the
// order they were read. Packet order per session is therefore the order
// of the reads, whatever order the workers finish in. A batch too small
// to be worth the handoff (minParallel, minParallelBytes) is sealed or
// opened inline once the queue is empty (inline work must never overtake
// a queued batch).

const (
	cryptBatch  = 64 // packets per batch at most
	cryptDepth  = 3  // batches in flight per pipeline
	minParallel = 8  // batches of fewer packets are done inline,
	// and so are batches of fewer bytes: for small packets the handoff
	// costs more than the crypto it spreads (down, 64-byte packets: 0.67x
	// of inline on 2 cores when they went to the workers).
	minParallelBytes = 8 << 10
	minChunk         = 4 // fewest packets one worker is handed
)

// cryptWork is a batch as the pipeline sees it.
type cryptWork interface {
	// crypt seals or opens packets [lo, hi) with s as scratch space; it
	// runs on a worker, in parallel with other slices of the batch.
	crypt(lo, hi int, s *datachan.Scratch)
	// finish hands the batch on (socket, TUN device) once every slice is
	// done; batches finish one at a time, in submission order.
	finish()
	slices() *sync.WaitGroup
}

type cryptJob struct {
	w      cryptWork
	lo, hi int
}

// pipeline is one direction's workers and in-order finisher. Its owner
// submits from one goroutine at a time and stops it.
type pipeline struct {
	workers  int
	batches  *atomic.Int64 // counts the batches handed to the workers
	jobs     chan cryptJob
	order    chan cryptWork
	inflight atomic.Int32
	idle     chan struct{} // a token whenever inflight drops to 0
	wg       sync.WaitGroup
}

func startPipeline(workers int, batches *atomic.Int64) *pipeline {
	q := &pipeline{workers: workers, batches: batches,
		jobs:  make(chan cryptJob, workers*cryptDepth),
		order: make(chan cryptWork, cryptDepth),
		idle:  make(chan struct{}, 1)}
	q.wg.Add(workers + 1)
	for range workers {
		go q.work()
	}
	go q.finishInOrder()
	return q
}

func (q *pipeline) work() {
	defer q.wg.Done()
	s := new(datachan.Scratch)
	for j := range q.jobs {
		j.w.crypt(j.lo, j.hi, s)
		j.w.slices().Done()
	}
}

func (q *pipeline) finishInOrder() {
	defer q.wg.Done()
	for w := range q.order {
		w.slices().Wait()
		w.finish()
		if q.inflight.Add(-1) == 0 {
			select {
			case q.idle <- struct{}{}:
			default:
			}
		}
	}
}

// submit queues n packets of w: in order behind what was submitted
// before, sliced among the workers.
func (q *pipeline) submit(w cryptWork, n int) {
	k := max(1, min(q.workers, n/minChunk))
	w.slices().Add(k)
	q.batches.Add(1)
	q.inflight.Add(1)
	q.order <- w
	for i := range k {
		q.jobs <- cryptJob{w: w, lo: i * n / k, hi: (i + 1) * n / k}
	}
}

// drain waits until every submitted batch has finished. One goroutine at
// a time (the one that submits).
func (q *pipeline) drain() {
	for q.inflight.Load() > 0 {
		<-q.idle
	}
}

// stop finishes what was submitted and ends the goroutines; nothing may
// be submitted any more.
func (q *pipeline) stop() {
	close(q.jobs)
	close(q.order)
	q.wg.Wait()
}
