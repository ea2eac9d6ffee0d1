package testbed

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

func TestPKIFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []PKIOption
		algo x509.PublicKeyAlgorithm
	}{
		{"ec", nil, x509.ECDSA},
		{"rsa", []PKIOption{WithRSA()}, x509.RSA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := PKI(t, tc.opts...)
			ca := readCert(t, f.CACert)
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			for _, leaf := range []struct {
				path string
				eku  x509.ExtKeyUsage
			}{{f.ServerCert, x509.ExtKeyUsageServerAuth}, {f.ClientCert, x509.ExtKeyUsageClientAuth}} {
				c := readCert(t, leaf.path)
				if c.PublicKeyAlgorithm != tc.algo {
					t.Errorf("%s: key algorithm %v, want %v", leaf.path, c.PublicKeyAlgorithm, tc.algo)
				}
				if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{leaf.eku}}); err != nil {
					t.Errorf("%s does not verify for %v: %v", leaf.path, leaf.eku, err)
				}
			}
			for _, key := range []string{f.CAKey, f.ServerKey, f.ClientKey} {
				if !strings.HasPrefix(f.Read(key), "-----BEGIN PRIVATE KEY-----") {
					t.Errorf("%s is not PKCS#8", key)
				}
			}
			static := regexp.MustCompile(`(?s)-----BEGIN OpenVPN Static key V1-----\n(?:[0-9a-f]{32}\n){16}-----END OpenVPN Static key V1-----\n$`)
			for _, key := range []string{f.TLSCrypt, f.TLSAuth} {
				if !static.MatchString(f.Read(key)) {
					t.Errorf("%s is not an OpenVPN Static key V1:\n%s", key, f.Read(key))
				}
			}
			if f.Read(f.TLSCrypt) == f.Read(f.TLSAuth) {
				t.Error("tls-crypt and tls-auth keys are equal")
			}
			if !strings.Contains(f.Read(f.TLSCryptV2Client), "BEGIN OpenVPN tls-crypt-v2 client key") {
				t.Errorf("tls-crypt-v2 client key:\n%s", f.Read(f.TLSCryptV2Client))
			}
		})
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestProfiles(t *testing.T) {
	f := PKI(t)
	for _, v := range Variants {
		p, err := f.Profile(v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if strings.Contains(p, "\n#") {
			// Only the first line may be a comment: static key comments are dropped.
			t.Errorf("%s: comment line inside the profile:\n%s", v, p)
		}
		wantBlock := map[Variant]string{VariantC: "<tls-auth>", VariantH: "<tls-auth>", VariantE: "<tls-crypt-v2>"}[v]
		if wantBlock == "" {
			wantBlock = "<tls-crypt>"
		}
		if !strings.Contains(p, wantBlock) || !strings.Contains(p, "<ca>") {
			t.Errorf("%s: missing %s or <ca>:\n%s", v, wantBlock, p)
		}
		if hasCert := strings.Contains(p, "<cert>"); hasCert == (v == VariantF) {
			t.Errorf("%s: <cert> present = %v", v, hasCert)
		}
	}
	if _, err := f.Profile("z"); err == nil {
		t.Error("Profile(z) did not fail")
	}
}

func TestNetPair(t *testing.T) {
	p := NetPair(t)
	ctx := context.Background()
	if err := Ping(ctx, p.ClientNS, ServerIP4, 1); err != nil {
		t.Error(err)
	}
	if err := Ping(ctx, p.ClientNS, ServerIP6, 1); err != nil {
		t.Error(err)
	}
	// Go code in the namespace sees the namespace's links only.
	var names []string
	if err := InNamespace(p.ClientNS, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "lo,"+p.ClientLink {
		t.Errorf("interfaces in %s: %v, want lo and %s", p.ClientNS, names, p.ClientLink)
	}
	out, err := Run(ctx, p.ServerNS, "sysctl", "-n", "net.ipv4.ip_forward")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("ip_forward in server ns = %q (%v), want 1", out, err)
	}
}

// TestReferenceClient proves the harness with the real OpenVPN 2.6 client:
// it connects to the server variant and pings through the tunnel.
func TestReferenceClient(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "ping")
	variants := []Variant{VariantA}
	if !testing.Short() {
		variants = Variants
	}
	for _, v := range variants {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			t0 := time.Now()
			pair := NetPair(t)
			t1 := time.Now()
			srv := Server(t, pair, v)
			t2 := time.Now()
			dir := t.TempDir()
			var args []string
			switch v {
			case VariantF:
				creds := filepath.Join(dir, "creds")
				if err := os.WriteFile(creds, []byte(TestUser+"\n"+TestPass+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--auth-user-pass", creds)
			case VariantG:
				// The static challenge is answered over the management
				// interface, as a GUI would; see answerStaticChallenge.
				args = append(args, "--management", "127.0.0.1", "7505", "--management-query-passwords")
				go answerStaticChallenge(pair.ClientNS, "127.0.0.1:7505")
			case VariantH:
				// The 2.6 client only offers "cipher" like a 2.4 client would in compat mode.
				args = append(args, "--compat-mode", "2.4.0")
			}
			cli := startReferenceClient(t, pair, srv, dir, args...)
			t.Cleanup(func() { cli.Stop(5 * time.Second) })
			ctx := context.Background()
			t3 := time.Now()
			t.Logf("variant %s: netns pair %v, PKI+server start %v, reference client connect %v",
				v, t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond))
			targets := []string{TunnelServer4, LANHost4}
			if v == VariantI {
				targets = append(targets, TunnelServer6, LANHost6)
			}
			for _, addr := range targets {
				if err := Ping(ctx, pair.ClientNS, addr, 3); err != nil {
					t.Errorf("ping %s through the tunnel: %v", addr, err)
				}
			}
		})
	}
}

func TestBus(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	b := BusDaemonFor(t)
	if !strings.HasPrefix(b.Address, "unix:path="+b.Dir) {
		t.Errorf("address %q not in %s", b.Address, b.Dir)
	}
	out, err := exec.Command("busctl", "--address="+b.Address, "list", "--no-pager").CombinedOutput()
	if err != nil {
		t.Fatalf("busctl list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "org.freedesktop.DBus") {
		t.Errorf("busctl list does not show the bus itself:\n%s", out)
	}

	// The watcher sees broadcast and unicast signals alike.
	w, err := WatchSignals(b.Address, "type='signal',interface='net.openvpn.v3.sessions'")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sender, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	receiver, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer receiver.Close()
	if err := sender.Emit("/net/openvpn/v3/sessions", "net.openvpn.v3.sessions.SessionManagerEvent", dbus.ObjectPath("/x"), uint16(1), uint32(0)); err != nil {
		t.Fatal(err)
	}
	unicast := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/net/openvpn/v3/sessions/x")),
		dbus.FieldInterface:   dbus.MakeVariant("net.openvpn.v3.sessions"),
		dbus.FieldMember:      dbus.MakeVariant("StatusChange"),
		dbus.FieldDestination: dbus.MakeVariant(receiver.Names()[0]),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(uint32(0), uint32(0), "")),
	}, Body: []any{uint32(2), uint32(7), ""}}
	if err := sender.Send(unicast, nil).Err; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, member := range []string{"SessionManagerEvent", "StatusChange"} {
		if _, err := w.Wait(ctx, func(s *dbus.Signal) bool { return s.Name == "net.openvpn.v3.sessions."+member }); err != nil {
			t.Errorf("%s not seen: %v (seen %d signals)", member, err, len(w.Signals()))
		}
	}
}

// startReferenceClient starts the openvpn 2.6 client for the server's
// variant in the pair's client namespace and waits until it is connected.
func startReferenceClient(tb testing.TB, pair *Pair, srv *OpenVPNServer, dir string, extraArgs ...string) *Process {
	tb.Helper()
	profile := filepath.Join(dir, "client.ovpn")
	if err := os.WriteFile(profile, []byte(srv.Profile()), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := append([]string{"--config", profile, "--disable-dco"}, extraArgs...)
	cmd := Command(context.Background(), pair.ClientNS, "openvpn", args...)
	cli, err := StartProcess("openvpn client", filepath.Join(dir, "client.log"), cmd)
	if err != nil {
		tb.Fatal(err)
	}
	if err := cli.WaitForLog(context.Background(), "Initialization Sequence Completed", 30*time.Second); err != nil {
		cli.Stop(time.Second)
		tb.Fatalf("%v\nserver log tail:\n%s", err, srv.LogTail(15))
	}
	return cli
}

// BenchmarkNetPair measures creating and deleting a namespace pair.
func BenchmarkNetPair(b *testing.B) {
	testenv.RequireRoot(b)
	ctx := context.Background()
	for b.Loop() {
		p, err := NewNetPair(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerStart measures PKI + config + openvpn start until
// "Initialization Sequence Completed" (variant a); stopping is not timed.
func BenchmarkServerStart(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireCommand(b, "openvpn")
	pair := NetPair(b)
	ctx := context.Background()
	for b.Loop() {
		s, err := StartServer(ctx, pair, VariantA, b.TempDir(), ServerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Stop(5 * time.Second)
		b.StartTimer()
	}
}

// BenchmarkReferenceConnect measures the openvpn 2.6 client's connect time
// (process start to "Initialization Sequence Completed") against variant
// a: the number to compare ovpn3go's connect time with, in the same run.
func BenchmarkReferenceConnect(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireCommand(b, "openvpn")
	pair := NetPair(b)
	srv := Server(b, pair, VariantA)
	for b.Loop() {
		cli := startReferenceClient(b, pair, srv, b.TempDir())
		b.StopTimer()
		cli.Stop(5 * time.Second)
		b.StartTimer()
	}
}

// TestWatcherCloseDuringFlood closes watchers while signals keep arriving:
// the monitor's reader must never deliver into a closed channel (a godbus
// Close race that once panicked a CI run).
func TestWatcherCloseDuringFlood(t *testing.T) {
	testenv.RequireCommand(t, "busctl")
	b := BusDaemonFor(t)
	sender, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	ctx, cancel := context.WithCancel(context.Background())
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for ctx.Err() == nil {
			if err := sender.Emit("/net/openvpn/v3/sessions", "net.openvpn.v3.sessions.SessionManagerEvent", dbus.ObjectPath("/x"), uint16(1), uint32(0)); err != nil {
				return
			}
		}
	}()
	defer func() { cancel(); <-flooded }()
	for i := 0; i < 50; i++ {
		w, err := WatchSignals(b.Address, "type='signal',interface='net.openvpn.v3.sessions'")
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = w.Wait(wctx, func(*dbus.Signal) bool { return true })
		wcancel()
		if err != nil {
			t.Fatalf("watcher %d saw no signal: %v", i, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close watcher %d: %v", i, err)
		}
	}
}
