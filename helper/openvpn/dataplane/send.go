package dataplane

import (
	"sync"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/offload"
)

// The send side of parallel crypto: the TUN reader fills a sendBatch with
// the framed-to-be payloads of one device read, the workers seal them in
// place and the finisher writes them to the socket in order.

// Layout of a send batch's packet buffer: headroom for the framing and
// the packet header (sealing is in place), the payload, then tailroom for
// the framing and the tag Go's AEAD writes behind the ciphertext.
const (
	sendElem = 2048
	sendHead = 32
	sendRoom = sendElem - sendHead - frameTailroom - datachan.TagLen
)

// The headroom takes the framing and the largest AEAD header.
var _ [sendHead - frameHeadroom - (4 + datachan.PacketIDLen + datachan.TagLen)]struct{}

type sendBatch struct {
	parts sync.WaitGroup
	p     *Plane
	free  chan *sendBatch
	tx    *txPath
	first uint32 // packet id of packet 0
	n     int
	bufs  [cryptBatch][]byte // sendElem bytes each
	lens  [cryptBatch]int    // payload at bufs[i][sendHead:]
	pkts  [cryptBatch][]byte // sealed, inside bufs[i]
}

func (b *sendBatch) slices() *sync.WaitGroup { return &b.parts }

func (b *sendBatch) crypt(lo, hi int, s *datachan.Scratch) {
	key, comp := b.tx.key, b.tx.comp
	ovh := key.Overhead()
	for i := lo; i < hi; i++ {
		buf := b.bufs[i]
		plain := comp.frame(buf, sendHead, b.lens[i])
		at := cap(buf) - cap(plain) - ovh // plaintext sits where Seal puts the ciphertext
		b.pkts[i], _ = key.SealID(s, buf[at:at], plain, b.first+uint32(i))
	}
}

func (b *sendBatch) finish() {
	tx, p := b.tx, b.p
	var pkts, bytes int64
	var err error
	tx.mu.Lock()
	for _, pkt := range b.pkts[:b.n] {
		if err = tx.write(pkt); err != nil {
			break
		}
		pkts++
		bytes += int64(len(pkt))
	}
	if ferr := tx.flush(); err == nil {
		err = ferr
	}
	tx.mu.Unlock()
	p.countSent(pkts, bytes)
	if err != nil {
		p.log.Debug("data send failed", "err", err)
	}
	b.tx, b.n = nil, 0
	b.free <- b
}

// slot is where the next payload goes: sendRoom bytes.
func (b *sendBatch) slot() []byte { return b.bufs[b.n][sendHead : sendHead+sendRoom] }

// sendPipe is the TUN reader's pipeline and its batches.
type sendPipe struct {
	q    *pipeline
	free chan *sendBatch
}

func newSendPipe(p *Plane, workers int) *sendPipe {
	sp := &sendPipe{q: startPipeline(workers, &p.batches), free: make(chan *sendBatch, cryptDepth)}
	for range cryptDepth {
		b := &sendBatch{p: p, free: sp.free}
		backing := make([]byte, cryptBatch*sendElem)
		for i := range b.bufs {
			b.bufs[i] = backing[i*sendElem : (i+1)*sendElem : (i+1)*sendElem]
		}
		sp.free <- b
	}
	return sp
}

// begin takes a free batch for tx.
func (sp *sendPipe) begin(tx *txPath) *sendBatch {
	b := <-sp.free
	b.tx = tx
	return b
}

// submit takes packet ids for the batch and queues it; p.seq is held.
func (sp *sendPipe) submit(b *sendBatch) error {
	if b.n == 0 {
		sp.free <- b
		return nil
	}
	first, err := b.tx.key.ReserveIDs(b.n)
	if err != nil {
		b.tx, b.n = nil, 0
		sp.free <- b
		return err
	}
	b.first = first
	sp.q.submit(b, b.n)
	return nil
}

// rotate queues a full batch and takes the next; p.seq is held.
func (sp *sendPipe) rotate(tx *txPath, b *sendBatch) (*sendBatch, error) {
	if err := sp.submit(b); err != nil {
		return nil, err
	}
	return sp.begin(tx), nil
}

// parallelOK says a device read of n packets, total bytes in all and the
// largest max bytes, goes through the pipeline: enough packets and bytes,
// each fitting a batch slot, and a key that seals in parallel.
func parallelOK(tx *txPath, n, total, max int) bool {
	return n >= minParallel && total >= minParallelBytes && max <= sendRoom && tx.key.Parallel()
}

// sendSegmentsParallel splits one device read into a batch (more as they
// fill) and queues it; p.seq is held.
func (p *Plane) sendSegmentsParallel(sp *sendPipe, tx *txPath, seg *offload.Segmenter, clamp func([]byte)) error {
	b := sp.begin(tx)
	for {
		if b.n == cryptBatch {
			var err error
			if b, err = sp.rotate(tx, b); err != nil {
				return err
			}
		}
		n, ok := seg.Next(b.slot())
		if !ok {
			break
		}
		if clamp != nil {
			clamp(b.bufs[b.n][sendHead : sendHead+n])
		}
		b.lens[b.n] = n
		b.n++
	}
	return sp.submit(b)
}

// sendPacketsParallel queues the packets of one batched device read,
// bufs[i][off:off+sizes[i]], copying them into batches; p.seq is held.
func (p *Plane) sendPacketsParallel(sp *sendPipe, tx *txPath, bufs [][]byte, sizes []int, off int) error {
	b := sp.begin(tx)
	for i, n := range sizes {
		if n == 0 {
			continue
		}
		if b.n == cryptBatch {
			var err error
			if b, err = sp.rotate(tx, b); err != nil {
				return err
			}
		}
		b.lens[b.n] = copy(b.slot(), bufs[i][off:off+n])
		b.n++
	}
	return sp.submit(b)
}

func sum(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

// countTunIn counts packets read from the device as they are read,
// before any of them is sealed: a stream transport writes each packet as
// it is sealed, and a reader of the counters who saw the reply must see
// the request counted, however long the sender is kept off its CPU.
func (p *Plane) countTunIn(bytes, pkts int64) {
	p.ctr.TunBytesIn.Add(bytes)
	p.ctr.TunPktsIn.Add(pkts)
}

// countReads counts one batched device read's packets (countTunIn).
func (p *Plane) countReads(sizes []int) {
	var bytes, pkts int64
	for _, n := range sizes {
		if n > 0 {
			bytes += int64(n)
			pkts++
		}
	}
	p.countTunIn(bytes, pkts)
}

// countSent counts packets that left (or were queued on the batch
// writer, which sends them before its caller returns).
func (p *Plane) countSent(pkts, bytes int64) {
	if pkts > 0 {
		p.lastSent.Store(p.now().UnixNano())
		p.ctr.BytesOut.Add(bytes)
		p.ctr.PktsOut.Add(pkts)
	}
}

// write sends one sealed packet, or queues it on the batch writer; tx.mu
// is held.
func (tx *txPath) write(pkt []byte) error {
	if tx.bw == nil {
		return tx.tr.WritePacket(pkt)
	}
	dst, err := tx.bw.Buffer(len(pkt))
	if err != nil {
		return err
	}
	return tx.bw.Commit(append(dst, pkt...))
}
