package testbed

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestPingStrict: Ping passes only when every request is answered, and a
// loss budget lets through exactly the loss it names. The server drops
// every second echo request (nft numgen), so 2 of 4 go unanswered.
func TestPingStrict(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "nft")
	t.Parallel() // waits out the unanswered requests; own namespaces
	p := NetPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, addr := range []string{ServerIP4, ServerIP6} {
		if err := Ping(ctx, p.ClientNS, addr, 4); err != nil {
			t.Errorf("clean path: %v", err)
		}
	}
	if err := PingWith(ctx, p.ClientNS, ServerIP4, 2, PingOptions{Size: 1400, Source: ClientIP4}); err != nil {
		t.Errorf("large ping from %s: %v", ClientIP4, err)
	}

	for _, rule := range []string{
		"add table inet pingtest",
		"add chain inet pingtest in { type filter hook input priority 0; }",
		"add rule inet pingtest in icmp type echo-request numgen inc mod 2 == 1 drop",
		"add rule inet pingtest in icmpv6 type echo-request numgen inc mod 2 == 1 drop",
	} {
		if out, err := Run(ctx, p.ServerNS, "nft", strings.Fields(rule)...); err != nil {
			t.Fatalf("nft %s: %v\n%s", rule, err, out)
		}
	}
	// Each run below waits pingReplyWait for the dropped requests.
	for _, addr := range []string{ServerIP4, ServerIP6} {
		err := Ping(ctx, p.ClientNS, addr, 4)
		if err == nil || !strings.Contains(err.Error(), "2 of 4 requests unanswered") {
			t.Errorf("Ping %s with every second request dropped = %v, want 2 of 4 unanswered", addr, err)
		}
	}
	if err := PingLoss(ctx, p.ClientNS, ServerIP4, 4, 2); err != nil {
		t.Errorf("PingLoss with a budget of 2: %v", err)
	}
	if err := PingLoss(ctx, p.ClientNS, ServerIP4, 4, 1); err == nil {
		t.Error("PingLoss with a budget of 1 passed with 2 of 4 lost")
	}
}

// TestPingDevice: a ping bound to the veth works; one bound to a device
// that does not exist fails naming it, before anything is sent.
func TestPingDevice(t *testing.T) {
	testenv.RequireRoot(t)
	p := NetPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := PingWith(ctx, p.ClientNS, ServerIP4, 2, PingOptions{Device: p.ClientLink}); err != nil {
		t.Errorf("ping bound to %s: %v", p.ClientLink, err)
	}
	err := PingWith(ctx, p.ClientNS, ServerIP4, 1, PingOptions{Device: "nosuchdev0"})
	if err == nil || !strings.Contains(err.Error(), "bind to nosuchdev0") {
		t.Errorf("ping bound to a missing device = %v, want a bind error naming it", err)
	}
}
