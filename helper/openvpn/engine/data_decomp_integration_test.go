package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestIntegrationDecompression connects to the real OpenVPN 2.6 server
// configured with real compression (compress lz4-v2, compress lz4,
// comp-lzo yes; "allow-compression yes" on the server) under the
// profile's "allow-compression asym": the server's compressed packets
// are decompressed (Stats.Decompressed rises), what the client sends
// is never compressed (the server accepts it), and compressible pings of
// 1400 bytes move both ways. Without asym the same servers are refused
// (TestIntegrationCompressionFraming's refused-* cases).
func TestIntegrationDecompression(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	cases := []struct {
		name, compress string
		extra          []string
	}{
		{name: "lz4-v2", compress: "lz4-v2"},
		{name: "lz4", compress: "lz4"},
		{name: "comp-lzo-yes", extra: []string{"allow-compression yes", "comp-lzo yes", `push "comp-lzo yes"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Compress: tc.compress, Extra: tc.extra})
			ev := newCtlEvents()
			c, _, _ := ctlStartClient(t, pair, srv.Profile()+"allow-compression asym\n", Credentials{}, ev)
			ev.waitFor(t, StateConnected, 30*time.Second)
			before := c.Stats()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Zero-filled payloads: the server's replies compress well.
			const n, size = 20, 1400
			if out, err := testbed.Run(ctx, pair.ClientNS, "ping", "-c", "20", "-i", "0.05", "-s", "1400", "-p", "00", "-W", "2", testbed.TunnelServer4); err != nil {
				t.Fatalf("ping: %v\n%s", err, out)
			} else if !strings.Contains(out, " 0% packet loss") {
				t.Errorf("ping lost packets:\n%s", out)
			}
			st := c.Stats()
			if got := st.Decompressed - before.Decompressed; got < n {
				t.Errorf("%d packets decompressed, want at least the %d echo replies", got, n)
			}
			if in, out := st.TunBytesIn-before.TunBytesIn, st.TunBytesOut-before.TunBytesOut; in < n*size || out < n*size {
				t.Errorf("tunnel moved %d bytes up, %d down; want at least %d each way", in, out, n*size)
			}
			if strings.Contains(srv.Log(), "Bad compression") || strings.Contains(srv.Log(), "decompress") {
				t.Errorf("server complained about what the client sent:\n%s", srv.LogTail(30))
			}
		})
	}
}
