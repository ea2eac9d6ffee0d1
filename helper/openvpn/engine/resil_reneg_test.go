package engine

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestIntegrationRenegotiationNoLoss is the renegotiation Done-when of
// issue 5: with reneg-sec 10 on the server, a ping every 200 ms through the
// tunnel for 40 s sees at least three key rotations and loses at most one
// packet.
func TestIntegrationRenegotiationNoLoss(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, proto := range []string{testbed.ProtoUDP, testbed.ProtoTCP} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel() // 40 s of pinging each; own namespaces
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: proto, Extra: []string{"reneg-sec 10"}})
			c, states, ctx, stop := runClient(t, pair, srv.Profile(), nil)
			// Loss budget 1: the Done-when allows one ping lost across the
			// key changes.
			if err := testbed.PingLoss(ctx, pair.ClientNS, testbed.TunnelServer4, 200, 1); err != nil {
				t.Errorf("across the renegotiations: %v", err)
			}
			rot := c.Stats().KeyRotations
			t.Logf("%d key rotations", rot)
			if rot < 3 {
				t.Errorf("%d key rotations in 40 s with reneg-sec 10, want at least 3", rot)
			}
			for _, s := range states.all() {
				if s == StateReconnecting {
					t.Errorf("reconnected instead of renegotiating: %v", states.all())
				}
			}
			stop()
		})
	}
}
