package ctlwrap

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Vectors computed independently (Python hmac + AES-CTR from the
// "cryptography" package) from the layout in protocol spec §1.10 with the
// counting key 00..ff: the client sends with key 1 (cipher bytes 128..159,
// HMAC bytes 192..223), the server with key 0 (cipher 0..31, HMAC 64..95).
const (
	tlsCryptClientVector = "21 1122334455667788 00000005 65000000" +
		"759ff54c881f5a12a5758e53b1ab2427dd02c518a44458e232d6b4396d115892" +
		"3b6256f09809b8e7a409785ecb513e3b2edfbe399c62"
	tlsCryptServerVector = "40 a1a2a3a4a5a6a7a8 00000001 65000001" +
		"4c216c2cda0cd2b6b2ca7a8cca4bea483317fd0bea657c01ab0304ae833fa16a" +
		"eebd8c166d81cdb6461b75b7e1f661de55"
)

func TestTLSCryptClientVector(t *testing.T) {
	c, err := newTLSCrypt(countingKey(t), DirectionInverse, nil, fixedClock(0x65000000), 5)
	if err != nil {
		t.Fatal(err)
	}
	p := wire.ControlPacket{Opcode: wire.OpControlV1, KeyID: 1, SessionID: sidClient,
		Acks: []uint32{3}, RemoteSessionID: sidServer, PacketID: 9, Payload: []byte("hello")}
	got, err := c.Wrap([]byte{0xee}, &p)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, tlsCryptClientVector)
	if got[0] != 0xee || !bytes.Equal(got[1:], want) {
		t.Fatalf("Wrap =\n%x\nwant\nee%x", got, want)
	}
}

func TestTLSCryptServerVector(t *testing.T) {
	w, err := NewTLSCrypt(countingKey(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.Unwrap(unhex(t, tlsCryptServerVector))
	if err != nil {
		t.Fatal(err)
	}
	want := wire.ControlPacket{Opcode: wire.OpControlHardResetServerV2, SessionID: sidServer,
		Acks: []uint32{0}, RemoteSessionID: sidClient}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("Unwrap = %+v, want %+v", p, want)
	}
	if _, err := w.Unwrap(unhex(t, tlsCryptServerVector)); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed packet: err = %v, want ErrReplay", err)
	}
}

func newTLSCryptPair(t *testing.T) (client, server *tlsCrypt) {
	t.Helper()
	k := countingKey(t)
	client, err := newTLSCrypt(k, DirectionInverse, nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	server, err = newTLSCrypt(k, DirectionNormal, nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

func TestTLSCryptRoundTrip(t *testing.T) {
	client, server := newTLSCryptPair(t)
	for _, p := range samplePackets() {
		b, err := client.Wrap(nil, &p)
		if err != nil {
			t.Fatalf("%v: %v", p.Opcode, err)
		}
		if len(b) != p.PlainLen()+client.Overhead() || PacketOverhead(client, p.Opcode) != client.Overhead() {
			t.Fatalf("%v: wrapped %d bytes, plain %d + overhead %d", p.Opcode, len(b), p.PlainLen(), client.Overhead())
		}
		got, err := server.Unwrap(b)
		if err != nil {
			t.Fatalf("%v: %v", p.Opcode, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip %+v, want %+v", got, p)
		}
		// The client must not accept its own packets: the directions differ.
		if _, err := client.Unwrap(b); !errors.Is(err, ErrAuth) {
			t.Fatalf("client accepted own packet: %v", err)
		}
		back, err := server.Wrap(nil, &p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := client.Unwrap(back); err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("server->client: %+v, %v", got, err)
		}
	}
}

func TestTLSCryptTamper(t *testing.T) {
	client, server := newTLSCryptPair(t)
	p := samplePackets()[3]
	b, err := client.Wrap(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(b)
			c[i] ^= bit
			if _, err := server.Unwrap(c); err == nil {
				t.Fatalf("flipping byte %d bit %#x went unnoticed", i, bit)
			}
		}
	}
	if _, err := server.Unwrap(b[:len(b)-1]); !errors.Is(err, ErrAuth) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := server.Unwrap(b[:20]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	// The untouched packet still passes once, then is a replay.
	if _, err := server.Unwrap(b); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Unwrap(b); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
}

func TestTLSCryptReplayIDs(t *testing.T) {
	client, server := newTLSCryptPair(t)
	p := samplePackets()[0]
	var pkts [][]byte
	for range 5 {
		b, err := client.Wrap(nil, &p) // a retransmission gets a fresh replay id
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, b)
	}
	for _, i := range []int{4, 1, 3, 0, 2} { // reordered delivery is fine
		if _, err := server.Unwrap(pkts[i]); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	client.sendID.next = 0xffffffff
	if _, err := client.Wrap(nil, &p); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Wrap(nil, &p); err == nil {
		t.Fatal("replay id wrapped")
	}
}

func TestReplayReceiverTime(t *testing.T) {
	r := newReplayReceiver()
	id := func(n, tm uint32) []byte {
		return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(tm >> 24), byte(tm >> 16), byte(tm >> 8), byte(tm)}
	}
	steps := []struct {
		n, tm uint32
		ok    bool
	}{
		{1, 100, true},
		{1, 100, false},
		{2, 100, true},
		{1, 101, true}, // a newer time restarts the window (server session after stateless reset)
		{5, 100, false},
		{0, 101, false},
		{2, 101, true},
	}
	for i, s := range steps {
		if err := r.accept(id(s.n, s.tm)); (err == nil) != s.ok {
			t.Fatalf("step %d (%d@%d): err = %v", i, s.n, s.tm, err)
		}
	}
}

func TestPlain(t *testing.T) {
	w := NewPlain()
	for _, p := range samplePackets() {
		b, err := w.Wrap(nil, &p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.Unwrap(b)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("%+v %v", got, err)
		}
	}
	if _, err := w.Wrap(nil, &wire.ControlPacket{Opcode: wire.OpDataV2}); err == nil {
		t.Fatal("wrapped a data opcode")
	}
}
