package engine

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/transporttest"
)

// exitRecorder is a fake clock for the exit pacing: each wait is recorded
// with how many packets were on the wire when it began, and ends at once.
type exitRecorder struct {
	tr    *transporttest.Discard
	waits []time.Duration
	sent  []int // packets sent before each wait
}

func (r *exitRecorder) after(d time.Duration) <-chan time.Time {
	r.waits = append(r.waits, d)
	r.sent = append(r.sent, r.tr.Pkts)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

// goodbyeAttempt is a connected UDP attempt without cc-exit whose data
// channel writes to a transporttest.Discard.
func goodbyeAttempt(t *testing.T, n int, proto string) (*attempt, *exitRecorder, *datachan.Key) {
	t.Helper()
	block := make([]byte, datachan.KeyBlockLen)
	key, err := datachan.NewKey("AES-256-GCM", 0, block, 0)
	if err != nil {
		t.Fatal(err)
	}
	open, err := datachan.NewKey("AES-256-GCM", 0, block, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr := &transporttest.Discard{}
	rec := &exitRecorder{tr: tr}
	c := &Client{log: slog.New(slog.DiscardHandler), clock: systemClock{}, exitAfter: rec.after}
	a := &attempt{c: c, o: &options{explicitExit: n}, connected: true, log: c.log,
		ep: endpoint{network: proto}, dp: newDataPlane(c), tr: tr}
	if err := a.dataConn().InstallKey(dataplane.Primary, key); err != nil {
		t.Fatal(err)
	}
	return a, rec, open
}

// TestExplicitExitNotifyPaced: without cc-exit, explicit-exit-notify 3
// sends three OCC EXIT packets one second apart (send, wait 1 s, send,
// wait 1 s, send), as OpenVPN does; a large value is bounded; TCP sends
// none (the server sees the connection close).
func TestExplicitExitNotifyPaced(t *testing.T) {
	a, rec, open := goodbyeAttempt(t, 3, "udp")
	a.sayGoodbye()
	if rec.tr.Pkts != 3 {
		t.Fatalf("%d exit packets, want 3", rec.tr.Pkts)
	}
	if len(rec.waits) != 2 || rec.waits[0] != time.Second || rec.waits[1] != time.Second ||
		rec.sent[0] != 1 || rec.sent[1] != 2 {
		t.Errorf("waits %v after %v packets; want 1s after the first and after the second", rec.waits, rec.sent)
	}
	if p, err := open.Open(nil, rec.tr.Last); err != nil || !bytes.Equal(p, occExit) {
		t.Errorf("last packet is %x (%v), want OCC EXIT", p, err)
	}

	a, rec, _ = goodbyeAttempt(t, 1, "udp")
	a.sayGoodbye()
	if rec.tr.Pkts != 1 || len(rec.waits) != 0 {
		t.Errorf("explicit-exit-notify 1: %d packets, waits %v", rec.tr.Pkts, rec.waits)
	}
	a, rec, _ = goodbyeAttempt(t, 1000, "udp")
	a.sayGoodbye()
	if rec.tr.Pkts != maxExitPackets || len(rec.waits) != maxExitPackets-1 {
		t.Errorf("explicit-exit-notify 1000: %d packets, %d waits", rec.tr.Pkts, len(rec.waits))
	}
	a, rec, _ = goodbyeAttempt(t, 3, "tcp")
	a.sayGoodbye()
	if rec.tr.Pkts != 0 {
		t.Errorf("TCP: %d exit packets", rec.tr.Pkts)
	}
}
