package ctlwrap

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Vectors computed independently with Python's hmac module from the
// layout in spec §1.10, counting key 00..ff: key-direction 1 sends with the
// HMAC slot of key 1 (bytes 192..), the server (direction 0) with key 0's
// (bytes 64..); without a direction both use key 0.
const (
	tlsAuthClientSHA256 = "20 1122334455667788" +
		"fdeb9686580379095210138918139f795247f9fcb2d94255ef13ec4c240d3558" +
		"00000003 65000000 01 00000002 a1a2a3a4a5a6a7a8 00000004 746c73"
	tlsAuthServerSHA256 = "40 a1a2a3a4a5a6a7a8" +
		"c4b44ae6684da1e2793614bfabd018dba4e14f235a5846d2e633e4ff1ac7b275" +
		"00000001 65000002 01 00000000 1122334455667788 00000000"
	tlsAuthClientNoDirSHA1 = "28 1122334455667788" +
		"4c6fff511d4247487cb673a9a2883481bac1b80f" +
		"00000001 65000000 01 00000000 a1a2a3a4a5a6a7a8"
)

func TestTLSAuthVectors(t *testing.T) {
	k := countingKey(t)
	c, err := newTLSAuth(k, DirectionInverse, "sha256", fixedClock(0x65000000))
	if err != nil {
		t.Fatal(err)
	}
	c.sendID.next = 3
	p := wire.ControlPacket{Opcode: wire.OpControlV1, SessionID: sidClient, Acks: []uint32{2},
		RemoteSessionID: sidServer, PacketID: 4, Payload: []byte("tls")}
	got, err := c.Wrap(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, tlsAuthClientSHA256); !bytes.Equal(got, want) {
		t.Fatalf("Wrap =\n%x\nwant\n%x", got, want)
	}
	srv, err := c.Unwrap(unhex(t, tlsAuthServerSHA256))
	if err != nil {
		t.Fatal(err)
	}
	want := wire.ControlPacket{Opcode: wire.OpControlHardResetServerV2, SessionID: sidServer,
		Acks: []uint32{0}, RemoteSessionID: sidClient}
	if !reflect.DeepEqual(srv, want) {
		t.Fatalf("Unwrap = %+v", srv)
	}

	n, err := newTLSAuth(k, DirectionNone, "", fixedClock(0x65000000))
	if err != nil {
		t.Fatal(err)
	}
	ack := wire.ControlPacket{Opcode: wire.OpAckV1, SessionID: sidClient, Acks: []uint32{0}, RemoteSessionID: sidServer}
	got, err = n.Wrap(nil, &ack)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, tlsAuthClientNoDirSHA1); !bytes.Equal(got, want) {
		t.Fatalf("Wrap (no direction, SHA1) =\n%x\nwant\n%x", got, want)
	}
	// Without a direction both sides use the same key, so a peer accepts it.
	peer, _ := newTLSAuth(k, DirectionNone, "SHA1", nil)
	if _, err := peer.Unwrap(got); err != nil {
		t.Fatal(err)
	}
}

func TestTLSAuthRoundTrip(t *testing.T) {
	k := countingKey(t)
	for _, digest := range []string{"SHA1", "SHA224", "sha256", "SHA-384", "SHA2-512"} {
		for _, dir := range [][2]int{{DirectionInverse, DirectionNormal}, {DirectionNone, DirectionNone}} {
			client, err := NewTLSAuth(k, dir[0], digest)
			if err != nil {
				t.Fatal(err)
			}
			server, err := NewTLSAuth(k, dir[1], digest)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range samplePackets() {
				b, err := client.Wrap(nil, &p)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) != p.PlainLen()+client.Overhead() {
					t.Fatalf("%s: length %d", digest, len(b))
				}
				got, err := server.Unwrap(b)
				if err != nil || !reflect.DeepEqual(got, p) {
					t.Fatalf("%s dir %v %v: %+v %v", digest, dir, p.Opcode, got, err)
				}
				if _, err := server.Unwrap(b); !errors.Is(err, ErrReplay) {
					t.Fatalf("replay accepted: %v", err)
				}
			}
		}
	}
}

func TestTLSAuthTamper(t *testing.T) {
	k := countingKey(t)
	client, _ := NewTLSAuth(k, DirectionInverse, "SHA256")
	server, _ := NewTLSAuth(k, DirectionNormal, "SHA256")
	p := samplePackets()[3]
	b, _ := client.Wrap(nil, &p)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := server.Unwrap(c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := server.Unwrap(b[:40]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	// Wrong direction: the client's own packets do not verify.
	if _, err := client.Unwrap(b); !errors.Is(err, ErrAuth) {
		t.Fatalf("own packet: %v", err)
	}
}

func TestTLSAuthErrors(t *testing.T) {
	k := countingKey(t)
	if _, err := NewTLSAuth(k, 2, "SHA1"); err == nil {
		t.Fatal("direction 2 accepted")
	}
	if _, err := NewTLSAuth(k, 1, "MD4"); err == nil {
		t.Fatal("MD4 accepted")
	}
	if _, err := NewTLSAuth(nil, 1, "SHA1"); err == nil {
		t.Fatal("nil key accepted")
	}
}
