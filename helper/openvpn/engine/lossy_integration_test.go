package engine

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

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

// TestIntegrationLossyLink is the loss Done-when of issue 5: through a
// proxy that loses 10 % of the datagrams each way, duplicates 10 % and
// delays (reorders) a fifth of the rest, with fixed seeds, the engine
// connects, survives a server-initiated renegotiation without reconnecting
// and moves 1 MiB over TCP through the tunnel before and after it, intact.
func TestIntegrationLossyLink(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			t.Parallel() // each seed has its own namespaces and server
			lossyRun(t, seed)
		})
	}
}

func lossyRun(t *testing.T, seed uint64) {
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA, "reneg-sec 6")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.LogTail(30))
		}
	})
	proxy := startLossyProxy(t, pair.ClientNS, net.JoinHostPort(testbed.ServerIP4, "1194"), 0.10, 0.10, seed)
	sink := startHashSink(t, pair.ServerNS, testbed.TunnelServer4)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return nsDial(pair.ClientNS)(ctx, network, proxy.front.LocalAddr().String())
	}
	start := time.Now()
	c, states, ctx, stop := runClient(t, pair, srv.Profile(), func(cfg *Config) { cfg.Dial = dial })
	t.Logf("seed %d: connected through the lossy link in %v", seed, time.Since(start).Round(time.Millisecond))

	sendThroughTunnel(t, ctx, pair.ClientNS, sink, 1<<20)
	deadline := time.Now().Add(60 * time.Second)
	for c.Stats().KeyRotations < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no renegotiation within 60 s (server reneg-sec 6)")
		}
		time.Sleep(200 * time.Millisecond)
	}
	sendThroughTunnel(t, ctx, pair.ClientNS, sink, 1<<20)
	t.Logf("seed %d: %d key rotations, stats %+v", seed, c.Stats().KeyRotations, c.Stats())
	for _, s := range states.all() {
		if s == StateReconnecting || s == StateFailed {
			t.Errorf("seed %d: state %v on the lossy link: %v (%s)", seed, s, states.all(), states.last())
		}
	}
	stop()
}

// startHashSink listens on addr:0 in ns; each connection's bytes are
// hashed and the SHA-256 sent back once the client closes its side.
func startHashSink(t *testing.T, ns, addr string) string {
	var ln net.Listener
	if err := testbed.InNamespace(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0"))
		return err
	}); err != nil {
		t.Fatalf("sink: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(3 * time.Minute))
				h := sha256.New()
				if _, err := io.Copy(h, conn); err != nil {
					return
				}
				conn.Write(h.Sum(nil))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// sendThroughTunnel sends n random bytes to the sink from the client
// namespace (through the tunnel) and checks the sink's hash.
func sendThroughTunnel(t *testing.T, ctx context.Context, ns, sink string, n int) {
	t.Helper()
	data := make([]byte, n)
	crand.Read(data)
	want := sha256.Sum256(data)
	dctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	start := time.Now()
	conn, err := nsDial(ns)(dctx, "tcp", sink)
	if err != nil {
		t.Fatalf("dial the sink through the tunnel: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("send %d bytes: %v", n, err)
	}
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.Equal(got, want[:]) {
		t.Fatalf("sink hash %x (err %v), want %x", got, err, want)
	}
	t.Logf("%d bytes through the tunnel intact in %v", n, time.Since(start).Round(time.Millisecond))
}
