package transport

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestFloatTransport: the float transport sends to the server's address,
// reads a packet from any address but marks it as not from the server,
// and only follow (called for an authenticated packet) moves it there.
func TestFloatTransport(t *testing.T) {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	a, b := listen(), listen()
	f, err := ListenFloat(context.Background(), nil, netip.MustParseAddrPort(a.LocalAddr().String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	if err := f.WritePacket([]byte("to-a")); err != nil {
		t.Fatal(err)
	}
	n, client, err := a.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "to-a" {
		t.Fatalf("server a got %q, %v", buf[:n], err)
	}
	a.WriteToUDPAddrPort([]byte("from-a"), client)
	if n, err := f.ReadPacket(buf); err != nil || string(buf[:n]) != "from-a" || !f.FromPeer() {
		t.Fatalf("read %q, %v, from the server %v", buf[:n], err, f.FromPeer())
	}
	b.WriteToUDPAddrPort([]byte("from-b"), client)
	if n, err := f.ReadPacket(buf); err != nil || string(buf[:n]) != "from-b" || f.FromPeer() {
		t.Fatalf("read %q, %v, from the server %v; want from elsewhere", buf[:n], err, f.FromPeer())
	}
	// Not followed yet: still sends to a.
	f.WritePacket([]byte("still-a"))
	if n, _, err := a.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "still-a" {
		t.Fatalf("server a got %q, %v", buf[:n], err)
	}
	old, now := f.Follow()
	bAddr := netip.MustParseAddrPort(b.LocalAddr().String())
	if old.Port() != netip.MustParseAddrPort(a.LocalAddr().String()).Port() || now != bAddr || f.RemoteAddr().String() != bAddr.String() {
		t.Errorf("follow: %v -> %v, RemoteAddr %v", old, now, f.RemoteAddr())
	}
	f.WritePacket([]byte("to-b"))
	if n, _, err := b.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "to-b" {
		t.Fatalf("server b got %q, %v", buf[:n], err)
	}
}
