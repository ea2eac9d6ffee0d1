package udpbatch

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns a connected client socket and the server socket it sends to.
func pair(t *testing.T, network string, ip net.IP) (client, server *net.UDPConn) {
	t.Helper()
	server, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	_ = server.SetReadBuffer(8 << 20)
	client, err = net.DialUDP(network, nil, server.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// datagram i of a test stream: sizes vary so that runs start and end.
func datagram(i int) []byte {
	size := 1400
	switch {
	case i%17 == 16:
		size = 90 // a short one closes a GSO run
	case i%29 == 28:
		size = 1500 // a longer one cannot join
	}
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i + j)
	}
	b[0], b[1] = byte(i), byte(i>>8)
	return b
}

// sendAndCheck queues n datagrams through w (flushing every batch) and
// checks that the server reads each, intact, in order.
func sendAndCheck(t *testing.T, w *Writer, server *net.UDPConn, n, batch int) {
	t.Helper()
	for i := range n {
		d := datagram(i)
		b, err := w.Buffer(len(d))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(append(b, d...)); err != nil {
			t.Fatal(err)
		}
		if i%batch == batch-1 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		m, err := server.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v (lost by the writer: %d)", i, n, err, w.Lost)
		}
		if !bytes.Equal(buf[:m], datagram(i)) {
			t.Fatalf("datagram %d: got %d bytes starting %x, want %d", i, m, buf[:2], len(datagram(i)))
		}
	}
}

func TestWriterModes(t *testing.T) {
	for _, o := range []Options{{}, {Mmsg: true}, {GSO: true}, {GSO: true, Mmsg: true}} {
		t.Run(fmt.Sprintf("gso=%v,mmsg=%v", o.GSO, o.Mmsg), func(t *testing.T) {
			client, server := pair(t, "udp4", net.IPv4(127, 0, 0, 1))
			w, err := New(client, o)
			if err != nil {
				t.Fatal(err)
			}
			// Loopback has UDP GSO on every kernel this client supports.
			if w.GSO() != o.GSO || w.Mmsg() != o.Mmsg {
				t.Fatalf("GSO %v, mmsg %v; asked for %+v", w.GSO(), w.Mmsg(), o)
			}
			// Batches of 100 overflow the 64 messages and the arena, too.
			sendAndCheck(t, w, server, 500, 100)
			if w.Lost != 0 {
				t.Fatalf("%d datagrams lost", w.Lost)
			}
		})
	}
}

// The arena starts small (a tunnel at rest) and grows while datagrams are
// queued, which arrive intact, up to maxArena and no further.
func TestWriterArenaGrows(t *testing.T) {
	client, server := pair(t, "udp4", net.IPv4(127, 0, 0, 1))
	w, err := New(client, Options{GSO: true, Mmsg: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(w.arena) != firstArena {
		t.Fatalf("a new writer's arena holds %d bytes, want %d", len(w.arena), firstArena)
	}
	sendAndCheck(t, w, server, 10, 10) // 14 KB: no growth
	if len(w.arena) != firstArena {
		t.Errorf("arena of %d bytes after a 14 KB batch, want %d", len(w.arena), firstArena)
	}
	sendAndCheck(t, w, server, 60, 60) // ~85 KB queued at once
	if len(w.arena) != 128<<10 {
		t.Errorf("arena of %d bytes after an 85 KB batch, want %d", len(w.arena), 128<<10)
	}
	sendAndCheck(t, w, server, 600, 600) // ~850 KB: flushed on the way
	if len(w.arena) != maxArena {
		t.Errorf("arena of %d bytes after an 850 KB batch, want the most, %d", len(w.arena), maxArena)
	}
}

func TestWriterCommitElsewhere(t *testing.T) {
	client, _ := pair(t, "udp4", net.IPv4(127, 0, 0, 1))
	w, err := New(client, Options{GSO: true, Mmsg: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(make([]byte, 10)); err == nil {
		t.Fatal("Commit took a buffer Buffer did not hand out")
	}
}

func TestWriterNoAlloc(t *testing.T) {
	client, server := pair(t, "udp4", net.IPv4(127, 0, 0, 1))
	_ = server
	w, err := New(client, Options{GSO: true, Mmsg: true})
	if err != nil {
		t.Fatal(err)
	}
	d := datagram(1)
	allocs := testing.AllocsPerRun(50, func() {
		for range 40 {
			b, _ := w.Buffer(len(d))
			_ = w.Commit(append(b, d...))
		}
		_ = w.Flush()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of 40", allocs)
	}
}

// TestWriterGSOFallback: a socket the kernel refuses GSO on (here
// SO_NO_CHECK: no UDP checksum, so no segmentation offload, EINVAL) makes
// the writer turn GSO off and deliver the run as single datagrams.
func TestWriterGSOFallback(t *testing.T) {
	client, server := pair(t, "udp4", net.IPv4(127, 0, 0, 1))
	rc, err := client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) })
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(client, Options{GSO: true, Mmsg: true})
	if err != nil {
		t.Fatal(err)
	}
	if !w.GSO() {
		t.Fatal("GSO not detected")
	}
	sendAndCheck(t, w, server, 100, 50)
	if w.GSO() {
		t.Fatal("GSO still on after the kernel refused it")
	}
}
