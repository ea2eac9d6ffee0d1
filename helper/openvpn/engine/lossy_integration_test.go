package engine

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// lossyProxy relays UDP between the engine and the server inside the
// client namespace, dropping, duplicating and delaying (reordering)
// datagrams in both directions.
type lossyProxy struct {
	front *net.UDPConn // the engine talks to this
	back  *net.UDPConn // connected to the server
	loss  float64
	dup   float64
	mu    sync.Mutex
	rng   *rand.Rand
	peer  net.Addr
	wg    sync.WaitGroup
}

func startLossyProxy(t *testing.T, ns, server string, loss, dup float64, seed uint64) *lossyProxy {
	p := &lossyProxy{loss: loss, dup: dup, rng: rand.New(rand.NewPCG(seed, seed))}
	err := testbed.InNamespace(ns, func() error {
		var err error
		if p.front, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return err
		}
		raddr, err := net.ResolveUDPAddr("udp", server)
		if err != nil {
			return err
		}
		p.back, err = net.DialUDP("udp", nil, raddr)
		return err
	})
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.wg.Add(2)
	go p.relay(func(b []byte) (int, error) {
		n, a, err := p.front.ReadFrom(b)
		if err == nil {
			p.mu.Lock()
			p.peer = a
			p.mu.Unlock()
		}
		return n, err
	}, func(b []byte) { p.back.Write(b) })
	go p.relay(p.back.Read, func(b []byte) {
		p.mu.Lock()
		peer := p.peer
		p.mu.Unlock()
		if peer != nil {
			p.front.WriteTo(b, peer)
		}
	})
	t.Cleanup(func() {
		p.front.Close()
		p.back.Close()
		p.wg.Wait()
	})
	return p
}

func (p *lossyProxy) roll() (drop, dup bool, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() < p.loss {
		return true, false, 0
	}
	if p.rng.Float64() < 0.2 {
		delay = time.Duration(p.rng.IntN(40)) * time.Millisecond
	}
	return false, p.rng.Float64() < p.dup, delay
}

func (p *lossyProxy) relay(read func([]byte) (int, error), write func([]byte)) {
	defer p.wg.Done()
	var timers sync.WaitGroup
	defer timers.Wait()
	buf := make([]byte, 65535)
	for {
		n, err := read(buf)
		if err != nil {
			return
		}
		drop, dup, delay := p.roll()
		if drop {
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		send := func() {
			write(pkt)
			if dup {
				write(pkt)
			}
		}
		if delay == 0 {
			send()
			continue
		}
		timers.Add(1)
		time.AfterFunc(delay, func() { defer timers.Done(); send() })
	}
}

// TestIntegrationLossyLink connects through a proxy that loses 15% of the
// datagrams each way and duplicates and reorders others: the control
// channel must still complete the handshake and the tunnel must carry
// traffic.
func TestIntegrationLossyLink(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	for seed := uint64(1); seed <= 3; seed++ {
		proxy := startLossyProxy(t, pair.ClientNS, net.JoinHostPort(testbed.ServerIP4, "1194"), 0.15, 0.1, seed)
		prof, err := profile.Parse(srv.Profile())
		if err != nil {
			t.Fatal(err)
		}
		dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
			return nsDial(pair.ClientNS)(ctx, network, proxy.front.LocalAddr().String())
		}
		states := newStateLog()
		c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: dial})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		runErr := make(chan error, 1)
		start := time.Now()
		go func() { runErr <- c.Run(ctx) }()
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("server log:\n%s", srv.LogTail(30))
			}
		})
		states.waitFor(t, StateConnected, 90*time.Second)
		t.Logf("seed %d: connected through the lossy link in %v", seed, time.Since(start))
		// Some of the pings get lost; one answer proves the data path.
		if _, err := testbed.Run(ctx, pair.ClientNS, "ping", "-q", "-n", "-c", "20", "-i", "0.1", "-W", "1", testbed.TunnelServer4); err != nil && c.Stats().TunPacketsOut == 0 {
			t.Errorf("seed %d: no ping answered: %v", seed, err)
		}
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
