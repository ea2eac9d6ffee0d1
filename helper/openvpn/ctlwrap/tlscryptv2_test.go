package ctlwrap

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"reflect"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// fakeWKc is opaque to the client; only its length trailer matters.
func fakeWKc(n int) []byte {
	w := bytes.Repeat([]byte{0x5a}, n)
	binary.BigEndian.PutUint16(w[n-2:], uint16(n))
	return w
}

func v2KeyPEM(t testing.TB, kc, wkc []byte, typ string) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: append(bytes.Clone(kc), wkc...)})
}

func TestParseTLSCryptV2ClientKey(t *testing.T) {
	kc := countingKey(t).Bytes()
	wkc := fakeWKc(minWKcLen + 9) // 9 bytes of metadata: the timestamp type
	k, err := ParseTLSCryptV2ClientKey(v2KeyPEM(t, kc, wkc, tlsCryptV2ClientPEM))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Kc.Bytes(), kc) || !bytes.Equal(k.WKc, wkc) {
		t.Fatal("key split wrong")
	}
	bad := map[string][]byte{
		"not pem":      []byte("hello"),
		"wrong type":   v2KeyPEM(t, kc, wkc, "OpenVPN tls-crypt-v2 server key"),
		"short":        v2KeyPEM(t, kc, fakeWKc(minWKcLen-1), tlsCryptV2ClientPEM),
		"long":         v2KeyPEM(t, kc, fakeWKc(maxWKcLen+2), tlsCryptV2ClientPEM),
		"bad trailer":  v2KeyPEM(t, kc, append(fakeWKc(minWKcLen), 0, 0), tlsCryptV2ClientPEM),
		"static key":   []byte(staticKeyText(kc)),
		"kc only":      v2KeyPEM(t, kc, nil, tlsCryptV2ClientPEM),
		"empty":        nil,
		"garbage b64":  []byte("-----BEGIN OpenVPN tls-crypt-v2 client key-----\n!!!!\n-----END OpenVPN tls-crypt-v2 client key-----\n"),
		"missing tail": []byte("-----BEGIN OpenVPN tls-crypt-v2 client key-----\nAAAA\n"),
	}
	for name, text := range bad {
		if _, err := NewTLSCryptV2(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTLSCryptV2Wrap(t *testing.T) {
	kc := countingKey(t)
	wkc := fakeWKc(minWKcLen + 9)
	client, err := newTLSCryptV2(v2KeyPEM(t, kc.Bytes(), wkc, tlsCryptV2ClientPEM), fixedClock(0x65000000))
	if err != nil {
		t.Fatal(err)
	}
	server, _ := newTLSCrypt(kc, DirectionNormal, nil, nil, 1)
	for _, p := range samplePackets() {
		b, err := client.Wrap(nil, &p)
		if err != nil {
			t.Fatal(err)
		}
		withWKc := p.Opcode == wire.OpControlHardResetClientV3 || p.Opcode == wire.OpControlWKCV1
		if want := p.PlainLen() + PacketOverhead(client, p.Opcode); len(b) != want {
			t.Fatalf("%v: %d bytes, want %d", p.Opcode, len(b), want)
		}
		if withWKc {
			if !bytes.HasSuffix(b, wkc) {
				t.Fatalf("%v: WKc not appended", p.Opcode)
			}
			b = b[:len(b)-len(wkc)]
		}
		got, err := server.Unwrap(b)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("%v: %+v %v", p.Opcode, got, err)
		}
	}
	// The first replay id announces early negotiation: top byte 0x0f.
	fresh, _ := newTLSCryptV2(v2KeyPEM(t, kc.Bytes(), wkc, tlsCryptV2ClientPEM), nil)
	reset := wire.ControlPacket{Opcode: wire.OpControlHardResetClientV3, SessionID: sidClient}
	b, _ := fresh.Wrap(nil, &reset)
	if id := binary.BigEndian.Uint32(b[9:]); id != 0x0f000001 {
		t.Fatalf("first replay id %#x", id)
	}
}

func TestResendWKcRequested(t *testing.T) {
	cases := []struct {
		payload string
		want    bool
		err     bool
	}{
		{"", false, false},
		{"0001 0002 0001", true, false},
		{"0001 0002 0000", false, false},
		{"0007 0003 aabbcc 0001 0002 0001", true, false},
		{"0001 0002 00", false, true},
		{"0001 0001 01", false, true},
		{"00", false, true},
		{"0002 0010 00", false, true},
	}
	for _, c := range cases {
		got, err := ResendWKcRequested(unhex(t, c.payload))
		if got != c.want || (err != nil) != c.err {
			t.Errorf("%q: %v %v", c.payload, got, err)
		}
	}
}
