package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// firstHandshakeEnv makes the test binary a fresh client process for
// BenchmarkFirstHandshake: "profile-file server-addr cold|warm|second".
const firstHandshakeEnv = "OVPN3GO_FIRST_HANDSHAKE"

func init() {
	if arg := os.Getenv(firstHandshakeEnv); arg != "" {
		took, err := firstHandshake(strings.Fields(arg))
		if err != nil {
			fmt.Fprintln(os.Stderr, "first handshake:", err)
			os.Exit(1)
		}
		fmt.Println(took.Nanoseconds())
		os.Exit(0)
	}
}

// firstHandshake is the child: it prepares the profile (and warms it when
// asked), then times its process's first TLS handshake with the server.
func firstHandshake(args []string) (time.Duration, error) {
	if len(args) != 3 {
		return 0, fmt.Errorf("want 3 arguments, got %q", args)
	}
	text, err := os.ReadFile(args[0])
	if err != nil {
		return 0, err
	}
	p, err := profile.Parse(string(text))
	if err != nil {
		return 0, err
	}
	pre, err := Prepare(p, "")
	if err != nil {
		return 0, err
	}
	if args[2] == "warm" {
		if err := pre.Warm(context.Background()); err != nil {
			return 0, err
		}
	}
	cfg, err := buildTLSConfig(pre.tls)
	if err != nil {
		return 0, err
	}
	if args[2] == "second" {
		if _, err := dialHandshake(args[1], cfg.Clone()); err != nil {
			return 0, err
		}
	}
	return dialHandshake(args[1], cfg)
}

func dialHandshake(addr string, cfg *tls.Config) (time.Duration, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	err = tls.Client(conn, cfg).Handshake()
	return time.Since(start), err
}

// BenchmarkFirstHandshake times the first TLS handshake of fresh client
// processes against a server that is already warm (its own handshakes
// ran), cold and warmed (Prepared.Warm) in turns, and reports the
// medians: what Warm saves the handshake's client turns in a new backend,
// and (second) a process's second handshake, the floor a warm-up could
// reach.
func BenchmarkFirstHandshake(b *testing.B) {
	ca := makeCert(b, "ca", nil, true, nil, nil)
	srv := makeCert(b, "server", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil)
	client := makeCert(b, "client", ca, false, nil, nil)
	text := "client\ndev tun\nremote 192.0.2.1 1194 udp\nremote-cert-tls server\n<ca>\n" + ca.pem + "</ca>\n<cert>\n" + client.pem +
		"</cert>\n<key>\n" + keyPEM(b, "PRIVATE KEY", client.key) + "</key>\n"
	file := filepath.Join(b.TempDir(), "client.ovpn")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	scfg := serverTLS([]*testCert{srv}, ca)
	scfg.CurvePreferences = []tls.CurveID{tls.X25519} // as OpenSSL 3.0 servers choose
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	once := func(mode string) time.Duration {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), firstHandshakeEnv+"="+file+" "+ln.Addr().String()+" "+mode)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s child: %v", mode, err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			b.Fatalf("%s child said %q", mode, out)
		}
		return time.Duration(ns)
	}
	once("cold") // the server's own first handshake
	modes := []string{"cold", "warm", "second"}
	took := map[string][]time.Duration{}
	i := 0
	for b.Loop() {
		for j := range modes {
			m := modes[(i+j)%len(modes)] // which goes first rotates
			took[m] = append(took[m], once(m))
		}
		i++
	}
	ms := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(took["cold"]), "cold-ms")
	b.ReportMetric(ms(took["warm"]), "warm-ms")
	b.ReportMetric(ms(took["second"]), "second-ms")
}
