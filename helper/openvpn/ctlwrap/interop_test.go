package ctlwrap

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// These tests check our client-side wrapping against Debian's OpenVPN 2.6
// server: a server-generated HARD_RESET_SERVER_V2 that Unwrap accepts
// proves the key directions and the layout. The server runs in a network
// namespace of its own, listening on that namespace's loopback; the test's
// UDP socket is created inside the same namespace.

// realServer is an openvpn server in its own namespace.
type realServer struct {
	dir  string
	conn *net.UDPConn
	log  *bytes.Buffer
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// makePKI writes a throwaway EC CA and server certificate into dir.
func makePKI(t *testing.T, dir string) {
	t.Helper()
	p := func(f string) string { return filepath.Join(dir, f) }
	ext := p("ext.cnf")
	err := os.WriteFile(ext, []byte("[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\n"+
		"keyUsage=critical,keyCertSign,cRLSign\n[server]\nbasicConstraints=CA:FALSE\n"+
		"keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("ca.key"))
	run(t, "openssl", "req", "-new", "-x509", "-key", p("ca.key"), "-sha256", "-days", "2", "-subj", "/CN=ctlwrap-test-CA",
		"-config", ext, "-extensions", "ca", "-out", p("ca.crt"))
	run(t, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p("server.key"))
	run(t, "openssl", "req", "-new", "-key", p("server.key"), "-subj", "/CN=server", "-config", ext, "-out", p("server.csr"))
	run(t, "openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
		"-set_serial", "1", "-sha256", "-days", "2", "-extfile", ext, "-extensions", "server", "-out", p("server.crt"))
}

// startServer starts openvpn with the common server options plus extra
// (which may name files written by prepare into the directory).
func startServer(t *testing.T, extra string, prepare func(dir string)) *realServer {
	t.Helper()
	testenv.RequireRoot(t)
	openvpn := testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "openssl")
	testenv.RequireCommand(t, "ip")

	dir := t.TempDir()
	makePKI(t, dir)
	if prepare != nil {
		prepare(dir)
	}
	ns := testenv.UniqueName("ctlw")
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")

	conf := fmt.Sprintf(`mode server
tls-server
proto udp
local 127.0.0.1
port 1194
dev tun
topology subnet
ifconfig 10.77.0.1 255.255.255.0
ca %[1]s/ca.crt
cert %[1]s/server.crt
key %[1]s/server.key
dh none
disable-dco
verb 4
%[2]s
`, dir, extra)
	if err := os.WriteFile(filepath.Join(dir, "server.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &realServer{dir: dir, log: &bytes.Buffer{}}
	cmd := exec.Command("ip", "netns", "exec", ns, openvpn, "--config", filepath.Join(dir, "server.conf"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = srv.log, srv.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("openvpn log:\n%s", srv.log)
		}
	})
	srv.conn = udpInNetns(t, ns)
	t.Cleanup(func() { srv.conn.Close() })
	return srv
}

// udpInNetns opens a UDP socket inside namespace ns, connected to the
// server's loopback address. The goroutine that enters the namespace
// keeps its OS thread locked, so the thread is discarded rather than reused.
func udpInNetns(t *testing.T, ns string) *net.UDPConn {
	t.Helper()
	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1194})
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("udp socket in %s: %v", ns, r.err)
	}
	return r.c
}

// exchange sends the packet Wrap makes for p until the server answers with
// something Unwrap accepts, and returns that answer.
func (s *realServer) exchange(t *testing.T, w Wrapper, p *wire.ControlPacket) wire.ControlPacket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	buf := make([]byte, 2048)
	var lastErr error
	for ctx.Err() == nil {
		pkt, err := w.Wrap(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.conn.Write(pkt); err != nil {
			lastErr = err // server not listening yet: ICMP port unreachable
			time.Sleep(200 * time.Millisecond)
			continue
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := s.conn.Read(buf)
		if err != nil {
			lastErr = err
			continue
		}
		got, err := w.Unwrap(buf[:n])
		if err != nil {
			t.Fatalf("Unwrap of the server's answer (%x): %v", buf[:n], err)
		}
		return got
	}
	t.Fatalf("no answer from openvpn: %v", lastErr)
	return wire.ControlPacket{}
}

// checkServerReset verifies the server's answer to our reset.
func checkServerReset(t *testing.T, got wire.ControlPacket, sid wire.SessionID) {
	t.Helper()
	if got.Opcode != wire.OpControlHardResetServerV2 || got.KeyID != 0 {
		t.Fatalf("answer is %v key %d, want HARD_RESET_SERVER_V2 key 0", got.Opcode, got.KeyID)
	}
	if !reflect.DeepEqual(got.Acks, []uint32{0}) || got.RemoteSessionID != sid || got.PacketID != 0 {
		t.Fatalf("answer %+v does not ack our reset", got)
	}
}

func genStaticKey(t *testing.T, path string) *StaticKey {
	t.Helper()
	run(t, "openvpn", "--genkey", "secret", path)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseStaticKey(text)
	if err != nil {
		t.Fatalf("parse key openvpn generated: %v", err)
	}
	return k
}

func TestInteropTLSCrypt(t *testing.T) {
	var key *StaticKey
	srv := startServer(t, "tls-crypt tc.key", func(dir string) {
		key = genStaticKey(t, filepath.Join(dir, "tc.key"))
	})
	w, err := NewTLSCrypt(key)
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := wire.NewSessionID()
	got := srv.exchange(t, w, &wire.ControlPacket{Opcode: wire.OpControlHardResetClientV2, SessionID: sid})
	checkServerReset(t, got, sid)
	if len(got.Payload) != 0 {
		t.Fatalf("unexpected reset payload %x", got.Payload)
	}
}

func TestInteropTLSAuth(t *testing.T) {
	cases := []struct {
		name, server, digest string
		dir                  int
	}{
		{"direction 1 SHA256", "tls-auth ta.key 0\nauth SHA256", "SHA256", DirectionInverse},
		{"no direction SHA1", "tls-auth ta.key", "", DirectionNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var key *StaticKey
			srv := startServer(t, c.server, func(dir string) {
				key = genStaticKey(t, filepath.Join(dir, "ta.key"))
			})
			w, err := NewTLSAuth(key, c.dir, c.digest)
			if err != nil {
				t.Fatal(err)
			}
			sid, _ := wire.NewSessionID()
			got := srv.exchange(t, w, &wire.ControlPacket{Opcode: wire.OpControlHardResetClientV2, SessionID: sid})
			checkServerReset(t, got, sid)
		})
	}
}

func TestInteropTLSCryptV2(t *testing.T) {
	var clientKey []byte
	srv := startServer(t, "tls-crypt-v2 v2srv.key", func(dir string) {
		srvKey, cliKey := filepath.Join(dir, "v2srv.key"), filepath.Join(dir, "v2cli.key")
		run(t, "openvpn", "--genkey", "tls-crypt-v2-server", srvKey)
		run(t, "openvpn", "--tls-crypt-v2", srvKey, "--genkey", "tls-crypt-v2-client", cliKey)
		var err error
		if clientKey, err = os.ReadFile(cliKey); err != nil {
			t.Fatal(err)
		}
	})
	w, err := NewTLSCryptV2(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := wire.NewSessionID()
	got := srv.exchange(t, w, &wire.ControlPacket{Opcode: wire.OpControlHardResetClientV3, SessionID: sid})
	checkServerReset(t, got, sid)
	resend, err := ResendWKcRequested(got.Payload)
	if err != nil || !resend {
		t.Fatalf("server reset payload %x: resend %v, %v; want a WKc resend request", got.Payload, resend, err)
	}
	// Third packet: CONTROL_WKC_V1 acking the server's reset. The server
	// can only read it if WKc is appended right; it answers with an ACK.
	third := wire.ControlPacket{Opcode: wire.OpControlWKCV1, SessionID: sid, Acks: []uint32{0},
		RemoteSessionID: got.SessionID, PacketID: 1}
	ack := srv.exchange(t, w, &third)
	if ack.Opcode != wire.OpAckV1 || !reflect.DeepEqual(ack.Acks, []uint32{1}) || ack.RemoteSessionID != sid {
		t.Fatalf("answer to WKC_V1: %+v, want ACK_V1 of packet 1", ack)
	}
}
