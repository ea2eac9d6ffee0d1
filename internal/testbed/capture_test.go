package testbed

import (
	"context"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// OpenVPN opcodes the capture test looks for.
const (
	opResetServerV2 = 8
	opResetClientV3 = 10
	opControlWKCV1  = 11
)

// TestCaptureReferenceClient records the reference client's handshake
// with the tls-crypt-v2 servers (with and without force-cookie) and pins
// what the server's stateless cookie check depends on: after the server's
// reset, the client's next packet is a P_CONTROL_WKC_V1 (which carries the
// ack of the reset, i.e. the cookie), never a bare P_ACK_V1.
func TestCaptureReferenceClient(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, c := range []struct {
		name string
		opts ServerOptions
	}{{"e", ServerOptions{}}, {"e-force-cookie", ServerOptions{TLSCryptV2ForceCookie: true}}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pair := NetPair(t)
			srv := ServerWith(t, pair, VariantE, c.opts)
			capture, err := StartCapture(pair.ClientNS, Port)
			if err != nil {
				t.Fatal(err)
			}
			defer capture.Close()
			cli, err := StartReferenceClient(context.Background(), pair, srv, t.TempDir(), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Stop(5 * time.Second)
			pk := capture.Packets()
			t.Logf("handshake of the reference client:\n%s", Format(pk[:min(len(pk), 8)]))
			if len(pk) < 3 {
				t.Fatalf("captured %d packets, want the reset exchange:\n%s", len(pk), Format(pk))
			}
			if !pk[0].ToServer || pk[0].Opcode != opResetClientV3 || pk[1].ToServer || pk[1].Opcode != opResetServerV2 {
				t.Fatalf("handshake does not start with HARD_RESET_CLIENT_V3, HARD_RESET_SERVER_V2:\n%s", Format(pk))
			}
			for _, p := range pk[2:] {
				if p.ToServer {
					if p.Opcode != opControlWKCV1 {
						t.Errorf("first client packet after the server's reset has opcode %d, want %d (CONTROL_WKC_V1):\n%s", p.Opcode, opControlWKCV1, Format(pk))
					}
					break
				}
			}
		})
	}
}
