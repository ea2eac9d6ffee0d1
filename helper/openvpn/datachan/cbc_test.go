package datachan

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// The vectors were computed independently of this package with Python's
// cryptography (AES-CBC) and hmac modules from the counting key block:
// c2s cipher key 00.., c2s HMAC key 40.., s2c cipher key 80.., s2c HMAC
// key c0...
var cbcSealVectors = []struct {
	name, cipher, auth string
	keyID              uint8
	peerID             int
	iv                 byte // IV = iv, iv+1, … iv+15
	payload            []byte
	want               string
}{
	{"aes256-sha256-v2", "AES-256-CBC", "SHA256", 0, 7, 0x10, []byte("hello CBC world!"),
		"48000007c5efc0879fbd3e474b0e9f7c0a43411f93df703a2e6544e7c7f3960540ab730f101112131415161718191a1b1c1d1e1f5153a1c371ba0209fc457247686ec86c9de34362ed597a6839cbfba5a7942f3a"},
	{"aes192-sha512-v1-ping", "AES-192-CBC", "SHA512", 0, -1, 0x10, PingPayload[:],
		"300e4efa1079beba9fea113db3500c6549cd8c56e2f1096bde11fa762a89e2144dddb3173574a092d1a3a15402af7d87cd6e76c8da82de82616444c8b242d4c842101112131415161718191a1b1c1d1e1f23eb8c9afb5695e44ca5d694137777018079ccd77721206662e781ffba2ddc5c"},
}

var cbcOpenVectors = []struct {
	name, cipher, auth string
	keyID              uint8
	packet             string
	want               []byte
}{
	{"aes256-sha256-v1", "AES-256-CBC", "SHA256", 2,
		"32295cbc28fbc1c53ba190d98893ea58d84c1e3ccb169c6228b4ec96b14ae157cda0a1a2a3a4a5a6a7a8a9aaabacadaeaf23d35c5f2ef62bd949d10848a706948ec18af059af81800b89e8abfa3a3e3de3",
		[]byte("from the server")},
	{"aes128-sha1-empty", "AES-128-CBC", "SHA1", 1,
		"317ce122be4106c3c08f44efde51562fb8db833419a0a1a2a3a4a5a6a7a8a9aaabacadaeafa502f06b531fbb696018f33e374ae358",
		[]byte{}},
}

func fixedIV(first byte) func([]byte, uint32) {
	return func(iv []byte, _ uint32) {
		for i := range iv {
			iv[i] = first + byte(i)
		}
	}
}

func mustCBCKey(t testing.TB, cipher, auth string, keyID uint8, block []byte, peerID int) *Key {
	t.Helper()
	k, err := NewKeyAuth(cipher, auth, keyID, block, peerID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCBCSealVectors(t *testing.T) {
	for _, v := range cbcSealVectors {
		t.Run(v.name, func(t *testing.T) {
			k := mustCBCKey(t, v.cipher, v.auth, v.keyID, countingBlock(), v.peerID)
			k.cbc.ivGen = fixedIV(v.iv)
			got, err := k.Seal(nil, v.payload)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, v.want); !bytes.Equal(got, want) {
				t.Errorf("Seal =\n%x\nwant\n%x", got, want)
			}
		})
	}
	// The second packet of the first key: packet id 2, 12-byte payload.
	k := mustCBCKey(t, "AES-256-CBC", "SHA256", 0, countingBlock(), 7)
	k.cbc.ivGen = fixedIV(0x10)
	if _, err := k.Seal(nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	got, _ := k.Seal(nil, []byte("twelve bytes"))
	want := unhex(t, "4800000708779b960cd16a1f45e7d68b1065e3463cf953b9d9bf3fd1d8715238143342db101112131415161718191a1b1c1d1e1f1975b147304ac6112156e07f3513ce05683866150fd7ff9f0e78773030a31eb5")
	if !bytes.Equal(got, want) {
		t.Errorf("second Seal =\n%x\nwant\n%x", got, want)
	}
}

func TestCBCOpenVectors(t *testing.T) {
	for _, v := range cbcOpenVectors {
		t.Run(v.name, func(t *testing.T) {
			k := mustCBCKey(t, v.cipher, v.auth, v.keyID, countingBlock(), -1)
			pkt := unhex(t, v.packet)
			got, err := k.Open(nil, pkt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v.want) {
				t.Errorf("Open = %q, want %q", got, v.want)
			}
			if _, err := k.Open(nil, pkt); !errors.Is(err, ErrReplay) {
				t.Errorf("replayed packet: %v, want ErrReplay", err)
			}
		})
	}
}

func TestCBCRoundTripAndTamper(t *testing.T) {
	for _, c := range CBCCiphers() {
		for _, auth := range []string{"", "SHA1", "SHA256", "SHA512"} {
			client := mustCBCKey(t, c, auth, 3, countingBlock(), 5)
			server := mustCBCKey(t, c, auth, 3, serverBlock(countingBlock()), 5)
			for n := range 40 {
				pt := bytes.Repeat([]byte{byte(n)}, n)
				pkt, err := client.Seal(nil, pt)
				if err != nil {
					t.Fatal(err)
				}
				if len(pkt) > len(pt)+client.Overhead() {
					t.Fatalf("%s/%s: %d-byte packet for %d bytes, overhead %d", c, auth, len(pkt), n, client.Overhead())
				}
				// In place: dst shares the packet's memory.
				got, err := server.Open(pkt[:0], slices.Clone(pkt))
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s/%s len %d: Open = %x, %v", c, auth, n, got, err)
				}
			}
			pkt, _ := client.Seal(nil, []byte("payload to tamper with"))
			for i := 4; i < len(pkt); i++ { // every byte after op|key_id|peer-id is authenticated
				bad := slices.Clone(pkt)
				bad[i] ^= 0x01
				if _, err := server.Open(nil, bad); !errors.Is(err, ErrAuth) {
					t.Fatalf("%s/%s: flipped byte %d: %v, want ErrAuth", c, auth, i, err)
				}
			}
			for _, cut := range []int{1, 15, 16, len(pkt) - 4} {
				if _, err := server.Open(nil, pkt[:len(pkt)-cut]); err == nil {
					t.Errorf("%s/%s: truncated by %d accepted", c, auth, cut)
				}
			}
			if _, err := server.Open(nil, pkt); err != nil {
				t.Errorf("untampered packet after the tampered ones: %v", err)
			}
		}
	}
}

func TestCBCOnlyWhenAsked(t *testing.T) {
	for _, c := range SupportedCiphers() {
		if IsCBC(c) {
			t.Errorf("SupportedCiphers offers CBC cipher %s", c)
		}
	}
	if _, err := NewKeyAuth("AES-256-CBC", "MD4", 0, countingBlock(), -1); err == nil {
		t.Error("unknown digest accepted")
	}
	if _, err := NewKeyAuth("BF-CBC", "SHA1", 0, countingBlock(), -1); err == nil {
		t.Error("BF-CBC accepted")
	}
}

func TestCBCNoAllocs(t *testing.T) {
	client := mustCBCKey(t, "AES-256-CBC", "SHA256", 0, countingBlock(), 1)
	server := mustCBCKey(t, "AES-256-CBC", "SHA256", 0, serverBlock(countingBlock()), 1)
	pt := make([]byte, 1400)
	buf := make([]byte, 0, client.SealBufferLen(len(pt)))
	out := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(100, func() {
		pkt, err := client.Seal(buf[:0], pt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.Open(out[:0], pkt); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Seal+Open, want 0", n)
	}
}
