package datachan

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingBlock is the key block 00 01 … ff the vectors use: c2s cipher key
// starts at 0x00, c2s implicit IV is 40..47, s2c cipher key starts at 0x80,
// s2c implicit IV is c0..c7.
func countingBlock() []byte {
	b := make([]byte, KeyBlockLen)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// serverBlock swaps the halves so that a Key built from it plays the
// server: it sends with s2c and receives with c2s.
func serverBlock(b []byte) []byte {
	return append(bytes.Clone(b[2*slotLen:]), b[:2*slotLen]...)
}

func mustKey(t testing.TB, cipher string, keyID uint8, block []byte, peerID int) *Key {
	t.Helper()
	k, err := NewKey(cipher, keyID, block, peerID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Vectors computed independently with Python's "cryptography" AESGCM /
// ChaCha20Poly1305 from spec §1.8: nonce = packet id ‖ implicit IV, AAD =
// op|key ‖ peer-id ‖ packet id (V2) or packet id (V1), wire tag before
// ciphertext.
var sealVectors = []struct {
	cipher  string
	keyID   uint8
	peerID  int
	id      uint32
	payload string
	wire    string
}{
	{"AES-256-GCM", 0, 0x000102, 1, "hello, tunnel",
		"48 000102 00000001 b46b1aeb8a7f66a65fe644cc642919bb a3ae17d1049a86bd60d03a1218"},
	{"AES-128-GCM", 2, -1, 7, "v1 payload",
		"32 00000007 d496bdaa268baebbc85fdafb4bbc096a 4cd34a56d74d6b3b0e48"},
	{"CHACHA20-POLY1305", 1, 5, 0x01020304, "chacha",
		"49 000005 01020304 6f506f2156659ded711e7bf336ee14f9 5b71437b2870"},
}

var openVectors = []struct {
	cipher  string
	keyID   uint8
	payload []byte
	wire    string
}{
	{"AES-192-GCM", 0, []byte("from server"),
		"48 abcdef 00000003 791f2a0fddab77447e774dfcb3427bfb 643e398297011e8f3bf178"},
	{"AES-256-GCM", 0, PingPayload[:],
		"30 00000001 d8408d26b81476c4fcab915804e0fe5e 935c53e2eadd3824275aa3759531edf7"},
	{"CHACHA20-POLY1305", 3, []byte("chacha back"),
		"4b 000000 00000009 311d5b2977c78b90b46f465a54ea679e 402df1b4029d010477f1e2"},
}

func TestSealVectors(t *testing.T) {
	for _, v := range sealVectors {
		k := mustKey(t, v.cipher, v.keyID, countingBlock(), v.peerID)
		k.sentID.Store(uint64(v.id - 1))
		got, err := k.Seal([]byte{0xee}, []byte(v.payload))
		if err != nil {
			t.Fatal(err)
		}
		want := unhex(t, v.wire)
		if got[0] != 0xee || !bytes.Equal(got[1:], want) {
			t.Errorf("%s: Seal =\n%x\nwant\nee%x", v.cipher, got, want)
		}
		if len(want) != k.Overhead()+len(v.payload) {
			t.Errorf("%s: Overhead %d wrong", v.cipher, k.Overhead())
		}
	}
}

func TestOpenVectors(t *testing.T) {
	for _, v := range openVectors {
		k := mustKey(t, v.cipher, v.keyID, countingBlock(), 7)
		got, err := k.Open([]byte("x"), unhex(t, v.wire))
		if err != nil {
			t.Fatalf("%s: %v", v.cipher, err)
		}
		if !bytes.Equal(got, append([]byte("x"), v.payload...)) {
			t.Fatalf("%s: Open = %q", v.cipher, got)
		}
		if IsPing(got[1:]) != bytes.Equal(v.payload, PingPayload[:]) {
			t.Fatalf("IsPing wrong for %q", got[1:])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range SupportedCiphers() {
		for _, peer := range []int{-1, 0, 0xfffffe} {
			block := countingBlock()
			client := mustKey(t, c, 4, block, peer)
			server := mustKey(t, c, 4, serverBlock(block), peer)
			for _, n := range []int{0, 1, 16, 1400} {
				pt := bytes.Repeat([]byte{byte(n)}, n)
				pkt, err := client.Seal(nil, pt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := server.Open(nil, pkt)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s peer %d n %d: %v", c, peer, n, err)
				}
				// The client cannot open its own packets (other direction).
				if _, err := client.Open(nil, pkt); !errors.Is(err, ErrAuth) {
					t.Fatalf("client opened own packet: %v", err)
				}
				back, _ := server.Seal(nil, pt)
				if got, err := client.Open(nil, back); err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("server->client: %v", err)
				}
			}
		}
	}
}

func TestInPlace(t *testing.T) {
	block := countingBlock()
	client := mustKey(t, "AES-256-GCM", 0, block, 3)
	server := mustKey(t, "AES-256-GCM", 0, serverBlock(block), 3)
	pt := []byte("in place payload, quite a bit longer than one block")
	buf := make([]byte, client.SealBufferLen(len(pt)))
	copy(buf[client.Overhead():], pt)
	pkt, err := client.Seal(buf[:0], buf[client.Overhead():client.Overhead()+len(pt)])
	if err != nil {
		t.Fatal(err)
	}
	if &pkt[0] != &buf[0] {
		t.Fatal("Seal reallocated")
	}
	got, err := server.Open(pkt[:0], pkt)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("in-place Open: %q %v", got, err)
	}
}

func TestTamper(t *testing.T) {
	block := countingBlock()
	client := mustKey(t, "AES-256-GCM", 0, block, 3)
	server := mustKey(t, "AES-256-GCM", 0, serverBlock(block), 3)
	pkt, _ := client.Seal(nil, []byte("do not touch"))
	for i := range pkt {
		c := bytes.Clone(pkt)
		c[i] ^= 0x04
		if _, err := server.Open(nil, c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := server.Open(nil, pkt[:len(pkt)-1]); !errors.Is(err, ErrAuth) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := server.Open(nil, pkt[:23]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	// Rejected forgeries must not have moved the window.
	if got, err := server.Open(nil, pkt); err != nil || string(got) != "do not touch" {
		t.Fatalf("original after tampering: %v", err)
	}
}

func TestReplay(t *testing.T) {
	block := countingBlock()
	client := mustKey(t, "CHACHA20-POLY1305", 1, block, -1)
	server := mustKey(t, "CHACHA20-POLY1305", 1, serverBlock(block), -1)
	var pkts [][]byte
	for i := 0; i < 100; i++ {
		p, _ := client.Seal(nil, []byte{byte(i)})
		pkts = append(pkts, p)
	}
	open := func(i int) error { _, err := server.Open(nil, pkts[i]); return err }
	for _, i := range []int{0, 2, 1, 50, 10} { // ids 1,3,2,51,11: reordering is fine
		if err := open(i); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if err := open(2); !errors.Is(err, ErrReplay) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := open(99); err != nil { // id 100: window now reaches down to 37
		t.Fatal(err)
	}
	if err := open(20); !errors.Is(err, ErrReplay) { // id 21: too old
		t.Fatalf("too old: %v", err)
	}
	if err := open(40); err != nil { // id 41: inside the window, unseen
		t.Fatal(err)
	}
}

func TestWrongKeyAndOpcode(t *testing.T) {
	block := countingBlock()
	client := mustKey(t, "AES-128-GCM", 1, block, 0)
	server := mustKey(t, "AES-128-GCM", 2, serverBlock(block), 0)
	pkt, _ := client.Seal(nil, []byte("x"))
	if _, err := server.Open(nil, pkt); !errors.Is(err, ErrKeyID) {
		t.Fatalf("key id: %v", err)
	}
	pkt[0] = 0x20 // CONTROL_V1
	if _, err := server.Open(nil, pkt); !errors.Is(err, ErrOpcode) {
		t.Fatalf("opcode: %v", err)
	}
	if _, err := server.Open(nil, nil); !errors.Is(err, ErrShort) {
		t.Fatalf("empty: %v", err)
	}
}

func TestExhaustion(t *testing.T) {
	k := mustKey(t, "AES-256-GCM", 0, countingBlock(), 0)
	k.sentID.Store(RenegotiateAt - 1)
	if k.NeedsRenegotiation() {
		t.Fatal("too early")
	}
	k.Seal(nil, nil)
	if !k.NeedsRenegotiation() {
		t.Fatal("NeedsRenegotiation not set")
	}
	k.sentID.Store(0xFFFFFFFE)
	if _, err := k.Seal(nil, nil); err != nil {
		t.Fatal("last id refused")
	}
	for range 3 {
		if _, err := k.Seal(nil, nil); !errors.Is(err, ErrExhausted) {
			t.Fatalf("wrapped: %v", err)
		}
	}
}

func TestNewKeyErrors(t *testing.T) {
	b := countingBlock()
	cases := []struct {
		cipher string
		key    uint8
		block  []byte
		peer   int
	}{
		{"BF-CBC", 0, b, 0},
		{"AES-256-CFB", 0, b, 0},
		{"AES-256-CBC", 0, b[:200], 0},
		{"AES-256-GCM", 8, b, 0},
		{"AES-256-GCM", 0, b[:255], 0},
		{"AES-256-GCM", 0, b, -2},
		{"AES-256-GCM", 0, b, 0x1000000},
	}
	for _, c := range cases {
		if _, err := NewKey(c.cipher, c.key, c.block, c.peer); err == nil {
			t.Errorf("NewKey(%q, %d, %d bytes, %d) accepted", c.cipher, c.key, len(c.block), c.peer)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	block := countingBlock()
	for _, c := range SupportedCiphers() {
		client := mustKey(t, c, 0, block, 1)
		server := mustKey(t, c, 0, serverBlock(block), 1)
		pt := make([]byte, 1400)
		sealBuf := make([]byte, 0, client.SealBufferLen(len(pt)))
		openBuf := make([]byte, 0, 2048)
		var pkt []byte
		sealAllocs := testing.AllocsPerRun(100, func() {
			pkt, _ = client.Seal(sealBuf[:0], pt)
		})
		openAllocs := testing.AllocsPerRun(100, func() {
			p, _ := client.Seal(sealBuf[:0], pt)
			if _, err := server.Open(openBuf[:0], p); err != nil {
				t.Fatal(err)
			}
		})
		if sealAllocs != 0 || openAllocs != 0 {
			t.Errorf("%s: Seal %v allocs, Seal+Open %v allocs, want 0", c, sealAllocs, openAllocs)
		}
		_ = pkt
	}
}

func TestKeyAccessors(t *testing.T) {
	k := mustKey(t, "AES-256-GCM", 3, countingBlock(), -1)
	if k.Cipher() != "AES-256-GCM" || k.KeyID() != 3 || k.PeerID() != -1 || k.Overhead() != 21 {
		t.Fatal("accessors")
	}
	k.Seal(nil, nil)
	if k.PacketsSent() != 1 {
		t.Fatal("PacketsSent")
	}
}

// TestSealIDOpenIDParallel: ids reserved up front seal in any order on
// goroutines with their own Scratch; the server opens them in place in
// any order with OpenID, each reporting its own packet id, and Accept
// takes each once (a replay is refused) and counts it. CBC keys refuse
// both.
func TestSealIDOpenIDParallel(t *testing.T) {
	const n = 64
	client := mustKey(t, "AES-256-GCM", 0, countingBlock(), 4)
	server := mustKey(t, "AES-256-GCM", 0, serverBlock(countingBlock()), 4)
	first, err := client.ReserveIDs(n)
	if err != nil || first != 1 {
		t.Fatalf("ReserveIDs(%d) = %d, %v; want 1", n, first, err)
	}
	if id, _ := client.ReserveIDs(1); id != n+1 {
		t.Fatalf("the next reservation starts at %d, want %d", id, n+1)
	}
	pkts := make([][]byte, n)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var s Scratch
			for i := n - 1 - g; i >= 0; i -= 4 { // backwards: ids out of order
				pt := bytes.Repeat([]byte{byte(i)}, 100+i)
				pkt, err := client.SealID(&s, make([]byte, 0, client.SealBufferLen(len(pt))), pt, first+uint32(i))
				if err != nil {
					t.Error(err)
					return
				}
				pkts[i] = pkt
			}
		})
	}
	wg.Wait()
	opened := make([]Opened, n)
	for g := range 4 {
		wg.Go(func() {
			var s Scratch
			for i := g; i < n; i += 4 {
				pt, o, err := server.OpenID(&s, pkts[i][:0], pkts[i]) // in place
				if err != nil || !bytes.Equal(pt, bytes.Repeat([]byte{byte(i)}, 100+i)) || o.ID != first+uint32(i) {
					t.Errorf("packet %d: id %d, %d bytes, %v", i, o.ID, len(pt), err)
				}
				opened[i] = o
			}
		})
	}
	wg.Wait()
	for i, o := range opened {
		if !server.Accept(o) {
			t.Fatalf("packet %d refused", i)
		}
	}
	if server.Accept(opened[3]) {
		t.Fatal("a replayed packet was accepted")
	}
	if u := server.Usage(); u.Packets != n || u.RecvID != n {
		t.Errorf("server usage %+v, want %d packets up to id %d", u, n, n)
	}
	cbc := mustKey(t, "AES-256-CBC", 0, countingBlock(), 4)
	var s Scratch
	if _, err := cbc.SealID(&s, nil, []byte("x"), 1); err == nil || cbc.Parallel() {
		t.Error("a CBC key sealed with SealID or says it is parallel")
	}
	if !client.Parallel() {
		t.Error("an AEAD key says it is not parallel")
	}
}
