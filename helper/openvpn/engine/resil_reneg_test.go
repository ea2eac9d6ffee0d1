package engine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// pingLoss runs ping -i interval for count packets in ns and returns how
// many were sent and answered.
func pingLoss(ctx context.Context, ns, addr string, count int, interval string) (sent, recv int, out string, err error) {
	out, err = testbed.Run(ctx, ns, "ping", "-n", "-q", "-i", interval, "-c", strconv.Itoa(count), "-W", "2", addr)
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, out, fmt.Errorf("no ping summary (err %v): %s", err, out)
	}
	sent, _ = strconv.Atoi(m[1])
	recv, _ = strconv.Atoi(m[2])
	return sent, recv, out, nil
}

// TestIntegrationRenegotiationNoLoss is the renegotiation Done-when of
// issue 5: with reneg-sec 10 on the server, a ping every 200 ms through the
// tunnel for 40 s sees at least three key rotations and loses at most one
// packet.
func TestIntegrationRenegotiationNoLoss(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "ping")
	for _, proto := range []string{testbed.ProtoUDP, testbed.ProtoTCP} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel() // 40 s of pinging each; own namespaces
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: proto, Extra: []string{"reneg-sec 10"}})
			c, states, ctx, stop := runClient(t, pair, srv.Profile(), nil)
			sent, recv, out, err := pingLoss(ctx, pair.ClientNS, testbed.TunnelServer4, 200, "0.2")
			if err != nil {
				t.Fatal(err)
			}
			rot := c.Stats().KeyRotations
			t.Logf("%d key rotations, %d/%d pings answered", rot, recv, sent)
			if rot < 3 {
				t.Errorf("%d key rotations in 40 s with reneg-sec 10, want at least 3", rot)
			}
			if sent != 200 || sent-recv > 1 {
				t.Errorf("lost %d of %d pings across the renegotiations, want at most 1:\n%s", sent-recv, sent, out)
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
