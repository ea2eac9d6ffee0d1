package control

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// ctlConn is the net.Conn that crypto/tls runs over: Read returns the
// in-order payload bytes the reliability layer delivered, Write queues
// bytes for the control loop to cut into CONTROL_V1 packets. Write never
// blocks on the network, so the control loop itself may write through TLS
// without deadlocking.
//
// It also tells the control loop when the TLS side has finished its turn
// (idle): everything delivered was read and the reader waits for more, and
// every event it posted was handled. Until then the loop holds back the
// TLS output and the acknowledgements, so a turn's answer leaves as one
// burst carrying them (as OpenVPN's single thread sends it), not a bare
// ACK first and the TLS records after it.
type ctlConn struct {
	mu      sync.Mutex
	in      []byte // delivered, not yet read
	out     [][]byte
	closed  bool
	waiting bool            // Read is blocked for lack of input
	held    int             // events posted by the handshake goroutine, not yet handled
	gone    bool            // the handshake goroutine returned
	nonblk  bool            // Read without input returns errWouldBlock (the caller's goroutine reads)
	rwake   chan struct{}   // cap 1: data or close for Read
	wwake   chan<- struct{} // cap 1: tells the control loop the turn ended
	local   net.Addr
	remote  net.Addr
}

var errConnClosed = errors.New("control channel closed")

// errWouldBlock is Read's answer when nothing is there to read and the
// conn does not block: temporary, so crypto/tls keeps its state and a
// later Read carries on.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "control channel: no input yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func newCtlConn(wake chan<- struct{}, local, remote net.Addr) *ctlConn {
	return &ctlConn{rwake: make(chan struct{}, 1), wwake: wake, local: local, remote: remote}
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// deliver appends in-order bytes from the reliability layer.
func (c *ctlConn) deliver(b []byte) {
	c.mu.Lock()
	c.in = append(c.in, b...)
	c.mu.Unlock()
	signal(c.rwake)
}

// takeOutput returns the bytes TLS wrote since the last call, each Write
// as one element.
func (c *ctlConn) takeOutput() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// idle says the TLS side finished its turn: see ctlConn.
func (c *ctlConn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return true
	}
	// Once the handshake goroutine is gone, the caller's goroutine reads
	// what it delivers before it flushes.
	return c.held == 0 && (c.gone || c.nonblk || (c.waiting && len(c.in) == 0))
}

// handshakeEnded is called by the handshake goroutine before it posts
// its event: the turn lasts until the control loop has handled the event
// (release), so what the loop writes in answer leaves together with the
// handshake's own last output. After a
// successful handshake the caller's goroutine reads from now on, so Read
// without input returns errWouldBlock instead of waiting. Both in one step:
// a Flush in between would find the turn over and send the Finished
// without the key-method 2 message that HandleTLS adds.
func (c *ctlConn) handshakeEnded(ok bool) {
	c.mu.Lock()
	c.held++
	c.nonblk = ok
	c.mu.Unlock()
}

// release: the control loop handled one posted event.
func (c *ctlConn) release() {
	c.mu.Lock()
	c.held--
	c.mu.Unlock()
}

// readerGone: the handshake goroutine returned; its turn is over for good.
func (c *ctlConn) readerGone() {
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	signal(c.wwake)
}

func (c *ctlConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if len(c.in) > 0 {
			c.waiting = false
			n := copy(b, c.in)
			c.in = c.in[n:]
			if len(c.in) == 0 {
				c.in = nil
			}
			c.mu.Unlock()
			return n, nil
		}
		closed := c.closed
		if c.nonblk && !closed {
			c.mu.Unlock()
			return 0, errWouldBlock
		}
		// The first time Read finds nothing to read, the turn is over
		// unless an event is still with the control loop: wake the loop
		// to send the answer and the acknowledgements.
		endTurn := !c.waiting && c.held == 0
		c.waiting = true
		c.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		if endTurn {
			signal(c.wwake)
		}
		<-c.rwake
	}
}

func (c *ctlConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, errConnClosed
	}
	c.out = append(c.out, append([]byte(nil), b...))
	c.mu.Unlock()
	// No wake-up: the output waits for the end of the writer's turn,
	// which wakes the loop (the reader waiting for input, the handshake's
	// event), or the loop wrote it itself and flushes next anyway.
	return len(b), nil
}

func (c *ctlConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	signal(c.rwake)
	return nil
}

func (c *ctlConn) LocalAddr() net.Addr  { return c.local }
func (c *ctlConn) RemoteAddr() net.Addr { return c.remote }

// Deadlines are not supported: the handshake is bounded by its context
// (crypto/tls closes the conn when it expires) and by the hand-window.
func (c *ctlConn) SetDeadline(time.Time) error      { return nil }
func (c *ctlConn) SetReadDeadline(time.Time) error  { return nil }
func (c *ctlConn) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*ctlConn)(nil)
