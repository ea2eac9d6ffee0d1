package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// discardTransport counts what it is given and keeps the last packet (in
// a reused buffer, so writing does not allocate).
type discardTransport struct {
	n, pkts int
	last    []byte
}

func (d *discardTransport) ReadPacket([]byte) (int, error) { select {} }
func (d *discardTransport) WritePacket(p []byte) error {
	d.n += len(p)
	d.pkts++
	d.last = append(d.last[:0], p...)
	return nil
}
func (d *discardTransport) Close() error         { return nil }
func (d *discardTransport) Proto() string        { return "udp" }
func (d *discardTransport) RemoteAddr() net.Addr { return nil }

// sendBench is the TUN→socket path as the TUN reader drives it: a
// 1400-byte packet read into a buffer with framing room, then sealed with
// AES-256-GCM and written to the transport. The zero key block has equal
// client and server halves, so open (a key built from the same block) can
// decrypt what was sent.
type sendBench struct {
	dp   *dataPlane
	tr   *discardTransport
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
	sb := &sendBench{dp: &dataPlane{c: &Client{clock: systemClock{}}}, tr: &discardTransport{last: make([]byte, 0, 2048)}, open: open,
		buf: make([]byte, frameHeadroom+benchPacketLen+frameTailroom)}
	for i := range benchPacketLen {
		sb.buf[frameHeadroom+i] = byte(i)
	}
	sb.dp.tx.Store(newTxPath(sb.tr, key, framingNone))
	return sb
}

func (sb *sendBench) send() error {
	return sb.dp.sendFramed(sb.buf, frameHeadroom, benchPacketLen)
}

// TestDataSendPath checks what BenchmarkDataSend measures: each send puts
// one sealed packet carrying the whole 1400-byte payload on the wire, and
// the path does not allocate.
func TestDataSendPath(t *testing.T) {
	sb := newSendBench(t)
	if err := sb.send(); err != nil {
		t.Fatal(err)
	}
	if sb.tr.pkts != 1 {
		t.Fatalf("transport got %d packets, want 1", sb.tr.pkts)
	}
	plain, err := sb.open.Open(nil, sb.tr.last)
	if err != nil {
		t.Fatalf("open the sent packet: %v", err)
	}
	if !bytes.Equal(plain, sb.buf[frameHeadroom:frameHeadroom+benchPacketLen]) {
		t.Fatalf("sent packet carries %d bytes that differ from the 1400-byte payload", len(plain))
	}
	if got, want := sb.dp.c.ctr.bytesOut.Load(), int64(len(sb.tr.last)); got != want {
		t.Errorf("bytesOut = %d, want %d", got, want)
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
	if sb.tr.pkts != b.N {
		b.Fatalf("transport got %d packets for %d sends", sb.tr.pkts, b.N)
	}
}

// BenchmarkIperf3 measures TCP throughput through a real tunnel to the
// OpenVPN 2.6 server (variant a) with iperf3, 5 s per iteration, up
// (client to server) and down (-R); run with -benchtime=1x.
func BenchmarkIperf3(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireCommand(b, "openvpn")
	testenv.RequireCommand(b, "iperf3")
	pair := testbed.NetPair(b)
	srv := testbed.Server(b, pair, testbed.VariantA)
	prof, err := profile.Parse(srv.Profile())
	if err != nil {
		b.Fatal(err)
	}
	h, err := nsHandle(pair.ClientNS)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	states := newStateLog()
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: h}, Events: states, Dial: nsDial(pair.ClientNS)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	deadline := time.After(30 * time.Second)
	for connected := false; !connected; {
		select {
		case s := <-states.ch:
			connected = s == StateConnected
		case <-deadline:
			b.Fatal("not connected")
		}
	}
	iperfSrv := testbed.Command(ctx, pair.ServerNS, "iperf3", "-s", "-B", testbed.TunnelServer4)
	if err := iperfSrv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { iperfSrv.Process.Kill(); iperfSrv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	for _, dir := range []string{"up", "down"} {
		b.Run(dir, func(b *testing.B) {
			args := []string{"-c", testbed.TunnelServer4, "-t", "5", "-J"}
			if dir == "down" {
				args = append(args, "-R")
			}
			var mbps float64
			for b.Loop() {
				out, err := testbed.Run(ctx, pair.ClientNS, "iperf3", args...)
				if err != nil {
					b.Fatal(err)
				}
				var res struct {
					End struct {
						SumReceived struct {
							BitsPerSecond float64 `json:"bits_per_second"`
						} `json:"sum_received"`
					} `json:"end"`
				}
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					b.Fatal(err)
				}
				mbps = res.End.SumReceived.BitsPerSecond / 1e6
			}
			b.ReportMetric(mbps, "Mbit/s")
		})
	}
	st := c.Stats()
	b.ReportMetric(float64(st.BytesOut)/1e6, "MB-out")
	cancel()
	<-runErr
}
