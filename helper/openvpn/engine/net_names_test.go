package engine

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// nameLog is a resolver that records the names asked for (answering
// nothing, so the lookups fail).
type nameLog struct {
	mu    sync.Mutex
	names []string
}

func (l *nameLog) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		cli, srv := net.Pipe()
		go func() { // ends when the resolver closes its end
			defer srv.Close()
			for {
				var n [2]byte
				if _, err := io.ReadFull(srv, n[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(srv, q); err != nil || len(q) < 12 {
					return
				}
				var labels []string
				for i := 12; i < len(q) && q[i] != 0 && i+1+int(q[i]) <= len(q); i += int(q[i]) + 1 {
					labels = append(labels, string(q[i+1:i+1+int(q[i])]))
				}
				l.mu.Lock()
				l.names = append(l.names, strings.Join(labels, "."))
				l.mu.Unlock()
				// NXDOMAIN
				resp := append(append([]byte(nil), q[:2]...), 0x81, 0x83, 0, 0, 0, 0, 0, 0, 0, 0)
				if _, err := srv.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
					return
				}
			}
		}()
		return cli, nil
	}}
}

// TestRemoteRandomHostname: with remote-random-hostname every lookup asks
// for the remote's name behind a fresh random 12-hex-digit label; without
// it, and for an address, the name is asked as written.
func TestRemoteRandomHostname(t *testing.T) {
	random := regexp.MustCompile(`^[0-9a-f]{12}\.vpn\.test(\.|$)`) // the system may add search domains
	for _, tc := range []struct {
		extra  string
		random bool
	}{{"remote-random-hostname\n", true}, {"", false}} {
		var l nameLog
		p := testProfile(t, tc.extra+"remote vpn.test 1194 udp4\nconnect-retry-max 2\nconnect-retry 0\n")
		c, err := New(Config{Profile: p, Tun: noTun{}, Resolver: l.resolver(), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Run(ctx)
		cancel()
		if err == nil {
			t.Fatal("Run succeeded without a server")
		}
		l.mu.Lock()
		names := l.names
		l.mu.Unlock()
		if len(names) < 2 {
			t.Fatalf("%q: looked up %v, want two lookups (two passes)", tc.extra, names)
		}
		for _, n := range names {
			if random.MatchString(n) != tc.random || !tc.random && n != "vpn.test" && !strings.HasPrefix(n, "vpn.test.") {
				t.Errorf("%q: looked up %q", tc.extra, n)
			}
		}
		if tc.random && names[0] == names[len(names)-1] {
			t.Errorf("the random label did not change between lookups: %v", names)
		}
	}
	c := &Client{cfg: Config{Profile: testProfile(t, "remote-random-hostname\nremote 192.0.2.1\n")}}
	if got := c.lookupName("192.0.2.1"); got != "192.0.2.1" {
		t.Errorf("address rewritten to %q", got)
	}
}
