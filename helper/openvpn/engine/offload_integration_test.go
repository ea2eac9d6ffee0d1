package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestIntegrationOffloads moves 8 MiB each way over TCP through the real
// OpenVPN 2.6 server with every offload on (the default), each one off,
// all off, and with parallel crypto on (the TUN is read and written through
// io_uring unless uring or tun is off), checking every byte. Over the
// client's whole run, with the TUN offload the device must have handed out
// TSO super-packets (fewer reads than packets) and taken coalesced ones
// (fewer writes than packets); without it, one packet per read and write.
func TestIntegrationOffloads(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	for _, tc := range []struct {
		name  string
		lines string
		tun   bool
		ring  bool // the TUN is read (and its small packets written) through io_uring
	}{
		{"all-on", "", true, true},
		{"tun-off", "ovpn3go-offload tun off\n", false, false},
		{"udp-gso-off", "ovpn3go-offload udp-gso off\n", true, true},
		{"udp-mmsg-off", "ovpn3go-offload udp-mmsg off\n", true, true},
		{"rx-moderation-off", "ovpn3go-offload rx-moderation off\n", true, true},
		{"uring-off", "ovpn3go-offload uring off\n", true, false},
		{"all-off", "ovpn3go-offload tun off\novpn3go-offload udp-gso off\novpn3go-offload udp-mmsg off\novpn3go-offload rx-moderation off\novpn3go-offload tx-moderation off\novpn3go-offload uring off\n", false, false},
		{"parallel-crypto", "ovpn3go-offload parallel-crypto on\n", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, ctx, stop := runClient(t, pair, srv.Profile()+tc.lines, nil)
			bulkTransfer(t, ctx, pair, 8<<20)
			// The counters are read once the client has stopped: a
			// snapshot taken while the TUN reader runs can fall between
			// its read's count and its packet's (keepalives, the last
			// ACKs), which once read as 7882 packets in 7883 reads.
			stop()
			total := snapshotOffload(&c.ctr)
			pktsIn, reads := total.pktsIn, total.reads
			want := int64(0)
			if tc.ring {
				want = reads
			}
			if ring := c.ctr.TunRingReads.Load(); ring != want || reads == 0 {
				t.Errorf("%d of %d device reads through io_uring, want %d", ring, reads, want)
			}
			// The small packets (ACKs, up to dataplane's ringWriteMax) go
			// through the ring, data segments and super-packets with
			// write(2).
			pktsOut, writes := total.pktsOut, total.writes
			ring := c.ctr.TunRingWrites.Load()
			switch {
			case writes == 0:
				t.Error("no device writes")
			case tc.ring && (ring == 0 || ring >= writes):
				t.Errorf("%d of %d device writes through io_uring, want the small ones: some, not all", ring, writes)
			case !tc.ring && ring != 0:
				t.Errorf("%d of %d device writes through io_uring, want none", ring, writes)
			}
			t.Logf("TUN: %d packets in %d reads, %d packets in %d writes", pktsIn, reads, pktsOut, writes)
			if tc.tun {
				// At least some reads must have been super-packets and
				// some writes coalesced (ratios depend on timing).
				if reads >= pktsIn {
					t.Errorf("TUN offload on: %d packets took %d reads (no TSO super-packets)", pktsIn, reads)
				}
				if writes >= pktsOut {
					t.Errorf("TUN offload on: %d packets took %d writes (no coalescing)", pktsOut, writes)
				}
			} else if reads != pktsIn || writes != pktsOut {
				t.Errorf("TUN offload off: %d packets in %d reads, %d in %d writes", pktsIn, reads, pktsOut, writes)
			}
		})
	}
}

type offloadSnapshot struct{ pktsIn, reads, pktsOut, writes int64 }

func snapshotOffload(c *dataplane.Counters) offloadSnapshot {
	return offloadSnapshot{c.TunPktsIn.Load(), c.TunReads.Load(), c.TunPktsOut.Load(), c.TunWrites.Load()}
}

// bulkTransfer sends n pattern bytes from the client namespace to a
// listener in the server namespace over the tunnel and n bytes back, and
// checks both arrive unchanged.
func bulkTransfer(t *testing.T, ctx context.Context, pair *testbed.Pair, n int) {
	t.Helper()
	up, down := make([]byte, n), make([]byte, n)
	for i := range up {
		up[i], down[i] = byte(i*7+i>>11), byte(i*13+i>>9)
	}
	ln := tunnelListener(t, pair)
	srvErr := make(chan error, 1)
	go func() {
		srvErr <- func() error {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			got := make([]byte, n)
			if _, err := io.ReadFull(c, got); err != nil {
				return fmt.Errorf("server read: %w", err)
			}
			if !bytes.Equal(got, up) {
				return fmt.Errorf("upload corrupted (first difference at %d)", firstDiff(got, up))
			}
			_, err = c.Write(down)
			return err
		}()
	}()
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cli, err := nsDial(pair.ClientNS)(dctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_ = cli.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := cli.Write(up); err != nil {
		t.Fatalf("client write: %v", err)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(cli, got); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, down) {
		t.Fatalf("download corrupted (first difference at %d)", firstDiff(got, down))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// tunnelListener listens on TCP at the server's tunnel address in the
// server namespace; it is closed when the test ends.
func tunnelListener(t *testing.T, pair *testbed.Pair) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := testbed.InNamespace(pair.ServerNS, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(testbed.TunnelServer4, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
