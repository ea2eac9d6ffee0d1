package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PingOptions shape one PingWith run; the zero value is Ping's.
type PingOptions struct {
	// MaxLost is the loss budget: how many of the requests may go
	// unanswered. Zero (Ping) means every one must be answered; a caller
	// that allows loss says why at the call site.
	MaxLost int
	// Size is the ICMP payload in bytes (default 56, as ping's).
	Size int
	// Interval is the time between requests (default 200 ms).
	Interval time.Duration
	// Source is the local address to send from (default: by route).
	Source string
	// Device binds the socket to one interface (SO_BINDTODEVICE): requests
	// leave and replies count only through it, so with many tunnels whose
	// routes overlap the ping proves that one tunnel carries traffic.
	Device string
}

// pingReplyWait is how long replies are awaited after the last request:
// a reply later than that counts as lost. It is generous on purpose, so a
// loaded machine slows a ping down without failing it; it is not a
// latency check.
const pingReplyWait = 10 * time.Second

// Ping sends count echo requests from namespace ns to addr, one every
// 200 ms, and fails unless every one is answered with its own payload:
// the check for "the path works and keeps working".
func Ping(ctx context.Context, ns, addr string, count int) error {
	return PingWith(ctx, ns, addr, count, PingOptions{})
}

// PingLoss is Ping with a loss budget: it fails when more than maxLost of
// the count requests go unanswered.
func PingLoss(ctx context.Context, ns, addr string, count, maxLost int) error {
	return PingWith(ctx, ns, addr, count, PingOptions{MaxLost: maxLost})
}

// PingWith sends count echo requests from namespace ns to addr (IPv4 or
// IPv6) over a raw ICMP socket opened in ns, and waits until each one is
// answered by addr with the payload it carried, or pingReplyWait after the
// last request. It fails when more than o.MaxLost requests were not
// answered, naming which; a request the kernel refused to send counts as
// unanswered. Needs root (raw socket).
func PingWith(ctx context.Context, ns, addr string, count int, o PingOptions) error {
	ip := net.ParseIP(addr)
	if ip == nil {
		return fmt.Errorf("ping %s: not an IP address", addr)
	}
	if count <= 0 {
		return fmt.Errorf("ping %s: count %d", addr, count)
	}
	if o.Size <= 0 {
		o.Size = 56
	}
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	v4 := ip.To4() != nil
	network, reqType, replyType := "ip6:ipv6-icmp", byte(128), byte(129)
	if v4 {
		network, reqType, replyType = "ip4:icmp", 8, 0
	}
	var conn net.PacketConn
	if err := InNamespace(ns, func() (err error) {
		if conn, err = net.ListenPacket(network, o.Source); err != nil || o.Device == "" {
			return err
		}
		if err = bindToDevice(conn, o.Device); err != nil {
			conn.Close()
		}
		return err
	}); err != nil {
		return fmt.Errorf("ping %s in %s: %w", addr, ns, err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	payload := make([]byte, o.Size)
	_, _ = rand.Read(payload)

	var (
		mu       sync.Mutex
		answered = make([]bool, count)
		n        int
		allIn    = make(chan struct{})
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader: ends when conn is closed below
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			m, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			seq, ok := parseEchoReply(buf[:m], replyType, id, payload)
			if !ok || seq >= count || !from.(*net.IPAddr).IP.Equal(ip) {
				continue
			}
			mu.Lock()
			if !answered[seq] {
				answered[seq] = true
				n++
				if n == count {
					close(allIn)
				}
			}
			mu.Unlock()
		}
	}()
	defer func() {
		conn.Close()
		wg.Wait()
	}()

	var sendErr error
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for seq := 0; seq < count; seq++ {
		if seq > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return fmt.Errorf("ping %s from %s: %w", addr, ns, ctx.Err())
			}
		}
		msg := echoRequest(reqType, id, uint16(seq), payload, v4)
		if _, err := conn.WriteTo(msg, &net.IPAddr{IP: ip}); err != nil && sendErr == nil {
			sendErr = fmt.Errorf("request %d: %w", seq+1, err)
		}
	}
	wait := time.NewTimer(pingReplyWait)
	defer wait.Stop()
	select {
	case <-allIn:
	case <-wait.C:
	case <-ctx.Done():
		return fmt.Errorf("ping %s from %s: %w", addr, ns, ctx.Err())
	}

	mu.Lock()
	var missing []string
	for seq, ok := range answered {
		if !ok {
			missing = append(missing, fmt.Sprint(seq+1))
		}
	}
	mu.Unlock()
	if len(missing) <= o.MaxLost {
		return nil
	}
	err := fmt.Errorf("ping %s from %s: %d of %d requests unanswered (loss budget %d): requests %s",
		addr, ns, len(missing), count, o.MaxLost, strings.Join(missing, ","))
	if sendErr != nil {
		err = errors.Join(err, sendErr)
	}
	return err
}

// echoRequest builds an ICMP or ICMPv6 echo request. The kernel fills in
// the ICMPv6 checksum (it covers a pseudo-header); ICMPv4's is ours.
func echoRequest(typ byte, id, seq uint16, payload []byte, v4 bool) []byte {
	b := make([]byte, 8+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], payload)
	if v4 {
		binary.BigEndian.PutUint16(b[2:], icmpChecksum(b))
	}
	return b
}

// parseEchoReply returns the sequence number of an echo reply of type
// typ with identifier id that carries payload.
func parseEchoReply(b []byte, typ byte, id uint16, payload []byte) (int, bool) {
	if len(b) < 8 || b[0] != typ || b[1] != 0 || binary.BigEndian.Uint16(b[4:]) != id {
		return 0, false
	}
	if !bytes.Equal(b[8:], payload) {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(b[6:])), true
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// bindToDevice sets SO_BINDTODEVICE on a socket from net.ListenPacket.
func bindToDevice(conn net.PacketConn, dev string) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("bind to %s: %T has no raw socket", dev, conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("bind to %s: %w", dev, err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.BindToDevice(int(fd), dev)
	}); err != nil {
		return fmt.Errorf("bind to %s: %w", dev, err)
	}
	if serr != nil {
		return fmt.Errorf("bind to %s: %w", dev, serr)
	}
	return nil
}
