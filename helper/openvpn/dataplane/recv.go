package dataplane

import (
	"sync"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// The receive side of parallel crypto: the read loop reads a batch of
// datagrams and hands control packets on at once; the workers open the
// data packets in place; the finisher checks each against the replay
// window and writes it to the TUN device in the order the datagrams
// were read.

type recvBatch struct {
	parts  sync.WaitGroup
	c      *Conn
	rx     *rxState
	free   chan *recvBatch
	n      int
	bufs   [][]byte
	sizes  []int
	keys   []*datachan.Key // nil: nothing to open
	plain  [][]byte
	opened []datachan.Opened
	ok     []bool
}

func (b *recvBatch) slices() *sync.WaitGroup { return &b.parts }

func (b *recvBatch) crypt(lo, hi int, s *datachan.Scratch) {
	for i := lo; i < hi; i++ {
		k := b.keys[i]
		if k == nil {
			continue
		}
		pkt := b.bufs[i][:b.sizes[i]]
		var err error
		b.plain[i], b.opened[i], err = k.OpenID(s, pkt[:0], pkt)
		b.ok[i] = err == nil
	}
}

func (b *recvBatch) finish() {
	c := b.c
	for i, k := range b.keys[:b.n] {
		if k == nil {
			continue
		}
		if !b.ok[i] || !k.Accept(b.opened[i]) {
			c.dropped.Add(1)
			continue
		}
		c.deliver(b.plain[i], b.rx)
	}
	b.rx.sink.flush()
	b.free <- b
}

// readParallel is ReadLoop with the data packets opened by workers.
func (c *Conn) readParallel(tb transport.BatchConn, rx *rxState) error {
	q := startPipeline(c.p.workers, &c.p.batches)
	defer q.stop() // finishes the batches in flight
	size := tb.BatchSize()
	free := make(chan *recvBatch, cryptDepth)
	for range cryptDepth {
		free <- &recvBatch{c: c, rx: rx, free: free, bufs: recvBuffers(size, recvSlot), sizes: make([]int, size),
			keys: make([]*datachan.Key, size), plain: make([][]byte, size), opened: make([]datachan.Opened, size), ok: make([]bool, size)}
	}
	slot := recvSlot // grows to MaxPacket after a cut datagram (ReadLoop)
	for {
		b := <-free
		if len(b.bufs[size-1]) < slot {
			b.bufs = recvBuffers(size, slot)
		}
		rx.mod.before()
		n, err := tb.ReadBatch(b.bufs, b.sizes)
		if err != nil {
			free <- b
			return err
		}
		b.n = n
		data, bytes, serial := 0, 0, false
		for i := range n {
			b.keys[i] = nil
			if b.sizes[i] > len(b.bufs[i]) {
				c.dropped.Add(1)
				if slot < transport.MaxPacket {
					c.cfg.Log.Debug("datagram longer than its receive buffer dropped; the buffers grow to the largest packet")
					slot = transport.MaxPacket
				}
				continue
			}
			if b.sizes[i] == 0 {
				continue
			}
			if k := c.dataKey(b.bufs[i][:b.sizes[i]], rx); k != nil {
				b.keys[i] = k
				data++
				bytes += b.sizes[i]
				serial = serial || !k.Parallel()
			}
		}
		rx.mod.after(n, size, bytes)
		if data >= minParallel && bytes >= minParallelBytes && !serial {
			q.submit(b, n)
			continue
		}
		// Too few to hand over: inline, behind what is in flight.
		q.drain()
		for i, k := range b.keys[:n] {
			if k == nil {
				continue
			}
			pkt := b.bufs[i][:b.sizes[i]]
			plain, err := k.Open(pkt[:0], pkt)
			if err != nil {
				c.dropped.Add(1)
				continue
			}
			c.deliver(plain, rx)
		}
		rx.sink.flush()
		free <- b
	}
}
