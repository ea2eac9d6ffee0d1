package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Packet is one OpenVPN-over-UDP datagram a Capture saw.
type Packet struct {
	At       time.Time
	ToServer bool  // sent to the server's port (else from it)
	Opcode   uint8 // high 5 bits of the first payload byte
	KeyID    uint8 // low 3 bits
	Len      int   // UDP payload length
}

// Control says whether p is a control-channel packet: every opcode but
// the data packets P_DATA_V1 (6) and P_DATA_V2 (9) (../shared/spec/protocol.md).
func (p Packet) Control() bool { return p.Opcode != 6 && p.Opcode != 9 }

func (p Packet) String() string {
	dir := "s>c"
	if p.ToServer {
		dir = "c>s"
	}
	return fmt.Sprintf("%s op=%d key=%d len=%d", dir, p.Opcode, p.KeyID, p.Len)
}

// Capture records the UDP datagrams to and from one port in a network
// namespace (a packet socket, so it sees what the client sends before any
// server answers). It is for protocol questions an end-to-end test cannot
// answer otherwise, e.g. which opcode a client sends right after the
// server's reset. TCP is not decoded: its stream framing does not follow
// segment boundaries.
type Capture struct {
	fd   int
	port uint16
	stop chan struct{}
	done chan struct{}

	// rmu lets one goroutine at a time read the socket and append what it
	// read (the reader, or Packets draining the queue), so the list keeps
	// the kernel's order.
	rmu sync.Mutex
	buf []byte
	oob []byte

	mu      sync.Mutex
	packets []Packet
}

// StartCapture starts recording UDP datagrams to or from port in namespace
// ns. Close stops it.
func StartCapture(ns string, port int) (*Capture, error) {
	var fd int
	err := InNamespace(ns, func() (err error) {
		// SOCK_DGRAM: the kernel strips the link header, every frame
		// starts with its IP header. The protocol is ETH_P_ALL in network
		// byte order, so outgoing packets are seen too.
		fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_ALL)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("capture in %s: packet socket: %w", ns, err)
	}
	// A read that blocks forever could not be stopped: close does not wake
	// it. The timeout lets the reader look at stop regularly.
	tv := syscall.Timeval{Usec: 100_000}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("capture in %s: SO_RCVTIMEO: %w", ns, err)
	}
	// The kernel's time of each packet, not when the reader got to it:
	// timings between packets stay right on a loaded machine.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("capture in %s: SO_TIMESTAMPNS: %w", ns, err)
	}
	c := &Capture{fd: fd, port: uint16(port), stop: make(chan struct{}), done: make(chan struct{}),
		buf: make([]byte, 65536), oob: make([]byte, syscall.CmsgSpace(int(unsafe.Sizeof(syscall.Timespec{}))))}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read runs until Close.
func (c *Capture) read() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		c.rmu.Lock()
		err := c.recv(0)
		c.rmu.Unlock()
		if err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// recv reads one datagram from the socket and keeps it if it is one of
// the port's; the caller holds rmu.
func (c *Capture) recv(flags int) error {
	n, oobn, _, _, err := syscall.Recvmsg(c.fd, c.buf, c.oob, flags)
	if err != nil {
		return err
	}
	if p, ok := c.decode(c.buf[:n], packetTime(c.oob[:oobn])); ok {
		c.mu.Lock()
		c.packets = append(c.packets, p)
		c.mu.Unlock()
	}
	return nil
}

// packetTime is the kernel's timestamp of a packet (SCM_TIMESTAMPNS), or
// now when there is none.
func packetTime(oob []byte) time.Time {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS &&
				len(m.Data) >= int(unsafe.Sizeof(syscall.Timespec{})) {
				ts := (*syscall.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(ts.Unix())
			}
		}
	}
	return time.Now()
}

// decode picks an OpenVPN datagram out of an IPv4 or IPv6 packet (no
// IPv6 extension headers: the test bed sends none).
func (c *Capture) decode(b []byte, at time.Time) (Packet, bool) {
	if len(b) < 1 {
		return Packet{}, false
	}
	var udp []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 || b[9] != syscall.IPPROTO_UDP {
			return Packet{}, false
		}
		ihl := int(b[0]&0x0f) * 4
		if len(b) < ihl+8 {
			return Packet{}, false
		}
		udp = b[ihl:]
	case 6:
		if len(b) < 40+8 || b[6] != syscall.IPPROTO_UDP {
			return Packet{}, false
		}
		udp = b[40:]
	default:
		return Packet{}, false
	}
	src, dst := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	payload := udp[8:]
	if len(payload) == 0 || (src != c.port && dst != c.port) {
		return Packet{}, false
	}
	return Packet{
		At:       at,
		ToServer: dst == c.port,
		Opcode:   payload[0] >> 3,
		KeyID:    payload[0] & 0x07,
		Len:      len(payload),
	}, true
}

// Packets returns what was captured so far, oldest first.
func (c *Capture) Packets() []Packet {
	// What the kernel queued before this call belongs in the list even
	// if the reader has not got to it (a loaded machine): take it now.
	c.rmu.Lock()
	select {
	case <-c.stop:
	default:
		for {
			err := c.recv(syscall.MSG_DONTWAIT)
			if err != nil && !errors.Is(err, syscall.EINTR) {
				break
			}
		}
	}
	c.rmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Packet(nil), c.packets...)
}

// Format lists packets one per line, for test logs.
func Format(packets []Packet) string {
	var b strings.Builder
	for _, p := range packets {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Close stops the capture and waits for its reader.
func (c *Capture) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	<-c.done
	c.rmu.Lock() // not while Packets drains the socket
	defer c.rmu.Unlock()
	return syscall.Close(c.fd)
}
