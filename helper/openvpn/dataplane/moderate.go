package dataplane

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// Receive moderation (issue 14), as a NIC's rx-usecs or NAPI's deferred
// interrupts do it: while a bulk flow streams in, the socket reader takes
// its next read a short, bounded time later, so one recvmmsg returns
// several datagrams, their TCP segments leave for the device as one
// super-packet (tunSink's coalescer) and the kernel acknowledges them
// once. Without it a server that paces its packets finds the reader
// faster than itself: a wake-up, a device write and an ACK per packet.
//
// It adapts: the first read after a quiet spell is never put off (a
// lone ping or an idle tunnel sees no delay), a read is put off only
// after reads of full-sized datagrams came closer together than the
// delay, and only as long as waiting brings more than one datagram per
// read. A read that filled the batch is followed at once.

// modDelay is how long a busy flow's next read is put off: a few packets
// of a server pacing them tens of microseconds apart, well under a
// round trip across a network.
const modDelay = 100 * time.Microsecond

// modMinBytes is the average datagram size of reads worth moderating:
// bulk data, not acknowledgements or interactive traffic.
const modMinBytes = 1000

// moderator decides whether the socket reader waits before its next
// read; the read loop's goroutine owns it.
type moderator struct {
	delay time.Duration // 0: never wait
	now   func() time.Time
	sleep func(time.Duration)
	last  time.Time // when the previous read returned
	wait  bool      // the next read is put off
	held  bool      // the previous read was
}

// newModerator returns the moderator of a Conn's read loop: delay 0
// never waits; sleep nil blocks the thread (nanosleep).
func newModerator(delay time.Duration, now func() time.Time, sleep func(time.Duration)) *moderator {
	m := &moderator{delay: delay, now: now, sleep: sleep}
	if m.sleep == nil {
		m.sleep = m.nanosleep
	}
	return m
}

// moderation is the delay of a Conn's reads: modDelay for a plain UDP
// socket read with recvmmsg unless the profile switched it off; other
// transports (TCP streams, a floating server's one datagram at a time)
// are read as they come.
func (c *Conn) moderation() time.Duration {
	if _, ok := c.tr.(*transport.UDP); !ok || c.p.off.NoRxMod {
		return 0
	}
	return modDelay
}

// before is called before a read: it puts the read off when due.
func (m *moderator) before() {
	m.held = m.wait
	if m.wait {
		m.sleep(m.delay)
	}
}

// after is called with what a read of at most max datagrams returned:
// n datagrams of bytes in all.
func (m *moderator) after(n, max, bytes int) {
	if m.delay <= 0 {
		return
	}
	t := m.now()
	bulk := n > 0 && bytes >= n*modMinBytes
	switch {
	case !bulk || n >= max:
		m.wait = false
	case m.held:
		m.wait = n > 1 // waiting gathered datagrams: keep at it
	default:
		m.wait = t.Sub(m.last) < m.delay
	}
	m.last = t
}

// nanosleep blocks the reading goroutine's thread for d: the runtime's
// timers round sub-millisecond sleeps of an idle process up to a
// millisecond (netpoll's epoll_wait takes milliseconds).
func (m *moderator) nanosleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
