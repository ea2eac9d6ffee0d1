package engine

import (
	"context"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// floatRelay stands between the client and the real server, in the
// client's namespace: the client talks to socket a; once moved, the
// relay sends the server's packets to the client from socket b instead
// (the server's address as the client sees it changes) and forwards what
// arrives on either socket.
type floatRelay struct {
	a, b, up *net.UDPConn
	moved    atomic.Bool
	client   atomic.Pointer[net.UDPAddr]
	onB      atomic.Int64 // packets the client sent to b
	wg       sync.WaitGroup
}

func startFloatRelay(t *testing.T, pair *testbed.Pair) *floatRelay {
	t.Helper()
	r := &floatRelay{}
	err := testbed.InNamespace(pair.ClientNS, func() (err error) {
		local := &net.UDPAddr{IP: net.ParseIP(testbed.ClientIP4)}
		if r.a, err = net.ListenUDP("udp4", local); err != nil {
			return err
		}
		if r.b, err = net.ListenUDP("udp4", local); err != nil {
			return err
		}
		r.up, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(testbed.ServerIP4), Port: testbed.Port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fromClient := func(c *net.UDPConn, count *atomic.Int64) {
		defer r.wg.Done()
		buf := make([]byte, maxPacket)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			if count != nil {
				count.Add(1)
			}
			r.up.Write(buf[:n])
		}
	}
	r.wg.Add(3)
	go fromClient(r.a, nil)
	go fromClient(r.b, &r.onB)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, maxPacket)
		for {
			n, err := r.up.Read(buf)
			if err != nil {
				if strings.Contains(err.Error(), "refused") {
					continue
				}
				return
			}
			to := r.client.Load()
			if to == nil {
				continue
			}
			out := r.a
			if r.moved.Load() {
				out = r.b
			}
			out.WriteToUDP(buf[:n], to)
		}
	}()
	t.Cleanup(func() {
		r.a.Close()
		r.b.Close()
		r.up.Close()
		r.wg.Wait()
	})
	return r
}

// TestIntegrationFloat: with "float" the client follows the real server
// to a new address (port) once packets from there authenticate, and the
// tunnel keeps working through the move; without it the same move cuts
// the tunnel (the connected socket drops packets from the new address).
func TestIntegrationFloat(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	remote := regexp.MustCompile(`(?m)^remote .*$`)
	for _, float := range []bool{true, false} {
		name := map[bool]string{true: "float", false: "no-float"}[float]
		t.Run(name, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{})
			relay := startFloatRelay(t, pair)
			text := remote.ReplaceAllString(srv.Profile(), "remote "+testbed.ClientIP4+" "+portOf(relay.a))
			if float {
				text += "float\n"
			}
			ev := newCtlEvents()
			startClientWith(t, pair, text, ev, nil)
			ev.waitFor(t, StateConnected, 30*time.Second)
			pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer pcancel()
			if err := testbed.Ping(pctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
				t.Fatalf("ping before the move: %v", err)
			}
			relay.moved.Store(true)
			err := testbed.Ping(pctx, pair.ClientNS, testbed.TunnelServer4, 5)
			switch {
			case float && err != nil:
				t.Errorf("ping after the server moved: %v", err)
			case float && relay.onB.Load() == 0:
				t.Error("the client never sent to the server's new address")
			case float && !strings.Contains(ev.logs.String(), "server address changed (float)"):
				t.Error("no float logged")
			case !float && err == nil:
				t.Error("without float the tunnel survived packets from a new address")
			}
		})
	}
}

func portOf(c *net.UDPConn) string {
	_, p, _ := net.SplitHostPort(c.LocalAddr().String())
	return p
}

// nsListen opens packet sockets inside namespace ns.
func nsListen(ns string) ListenFunc {
	return func(ctx context.Context, network, address string) (net.PacketConn, error) {
		var pc net.PacketConn
		err := testbed.InNamespace(ns, func() (err error) {
			var lc net.ListenConfig
			pc, err = lc.ListenPacket(ctx, network, address)
			return err
		})
		return pc, err
	}
}
