package dataplane

import (
	"bytes"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/transporttest"
)

// sendBench is the TUN→socket path as the TUN reader drives it: a
// 1400-byte packet read into a buffer with framing room, then sealed with
// AES-256-GCM and written to the transport. The zero key block has equal
// client and server halves, so open (a key built from the same block) can
// decrypt what was sent.
type sendBench struct {
	p    *Plane
	tr   *transporttest.Discard
	buf  []byte // frameHeadroom + 1400 + frameTailroom
	open *datachan.Key
}

const benchPacketLen = 1400

func newSendBench(tb testing.TB) *sendBench {
	tb.Helper()
	block := make([]byte, datachan.KeyBlockLen)
	key, err := datachan.NewKey("AES-256-GCM", 0, block, 0)
	if err != nil {
		tb.Fatal(err)
	}
	open, err := datachan.NewKey("AES-256-GCM", 0, block, 0)
	if err != nil {
		tb.Fatal(err)
	}
	sb := &sendBench{p: New(Config{}), tr: &transporttest.Discard{Last: make([]byte, 0, 2048)}, open: open,
		buf: make([]byte, frameHeadroom+benchPacketLen+frameTailroom)}
	for i := range benchPacketLen {
		sb.buf[frameHeadroom+i] = byte(i)
	}
	if err := sb.p.NewConn(ConnConfig{Transport: sb.tr}).InstallKey(Primary, key); err != nil {
		tb.Fatal(err)
	}
	return sb
}

func (sb *sendBench) send() error {
	return sb.p.sendFramed(sb.buf, frameHeadroom, benchPacketLen)
}

// TestDataSendPath checks what BenchmarkDataSend measures: each send puts
// one sealed packet carrying the whole 1400-byte payload on the wire, and
// the path does not allocate.
func TestDataSendPath(t *testing.T) {
	sb := newSendBench(t)
	if err := sb.send(); err != nil {
		t.Fatal(err)
	}
	if sb.tr.Pkts != 1 {
		t.Fatalf("transport got %d packets, want 1", sb.tr.Pkts)
	}
	plain, err := sb.open.Open(nil, sb.tr.Last)
	if err != nil {
		t.Fatalf("open the sent packet: %v", err)
	}
	if !bytes.Equal(plain, sb.buf[frameHeadroom:frameHeadroom+benchPacketLen]) {
		t.Fatalf("sent packet carries %d bytes that differ from the 1400-byte payload", len(plain))
	}
	if got, want := sb.p.Counters().BytesOut.Load(), int64(len(sb.tr.Last)); got != want {
		t.Errorf("BytesOut = %d, want %d", got, want)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := sb.send(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("sending a 1400-byte packet allocates %v times, want 0", allocs)
	}
}

// BenchmarkDataSend measures the TUN→socket path (frame, seal, write) per
// 1400-byte packet; TestDataSendPath checks that it does not allocate.
func BenchmarkDataSend(b *testing.B) {
	sb := newSendBench(b)
	b.SetBytes(benchPacketLen)
	b.ReportAllocs()
	for b.Loop() {
		if err := sb.send(); err != nil {
			b.Fatal(err)
		}
	}
	if sb.tr.Pkts != b.N {
		b.Fatalf("transport got %d packets for %d sends", sb.tr.Pkts, b.N)
	}
}

// TestBatchWriterOffloads: a plain UDP transport sends through a batch
// writer using what the offload switches leave (loopback UDP has GSO);
// with both UDP offloads off, or on a transport that is not plain UDP,
// there is none.
func TestBatchWriterOffloads(t *testing.T) {
	cases := []struct {
		off       Offloads
		writer    bool
		gso, mmsg bool
	}{
		{Offloads{}, true, true, true},
		{Offloads{NoTUN: true}, true, true, true},
		{Offloads{NoGSO: true}, true, false, true},
		{Offloads{NoMmsg: true}, true, true, false},
		{Offloads{NoGSO: true, NoMmsg: true}, false, false, false},
	}
	for _, tc := range cases {
		_, skey := dataPlaneKeys(t, 1)
		peer := newTestPeer(t, skey)
		tr, _ := dialBenchTransport(t, peer)
		w := newBatchWriter(tr, tc.off)
		switch {
		case (w != nil) != tc.writer:
			t.Errorf("%+v: batch writer %v, want %v", tc.off, w != nil, tc.writer)
		case w != nil && (w.GSO() != tc.gso || w.Mmsg() != tc.mmsg):
			t.Errorf("%+v: GSO %v mmsg %v, want %v %v", tc.off, w.GSO(), w.Mmsg(), tc.gso, tc.mmsg)
		}
		tr.Close()
		peer.close()
	}
	if w := newBatchWriter(&transporttest.Discard{}, Offloads{}); w != nil {
		t.Error("a transport that is not plain UDP got a batch writer")
	}
}
