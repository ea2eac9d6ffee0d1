package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
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

var (
	sidA = SessionID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	sidB = SessionID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}
)

func TestHeaderByte(t *testing.T) {
	// HARD_RESET_CLIENT_V2 key 0 is 7<<3 = 0x38; DATA_V2 key 5 is 9<<3|5 = 0x4d.
	cases := []struct {
		op  Opcode
		key uint8
		b   byte
	}{
		{OpControlHardResetClientV2, 0, 0x38},
		{OpControlHardResetServerV2, 0, 0x40},
		{OpControlV1, 1, 0x21},
		{OpAckV1, 7, 0x2f},
		{OpDataV2, 5, 0x4d},
		{OpDataV1, 2, 0x32},
		{OpControlSoftResetV1, 3, 0x1b},
		{OpControlHardResetClientV3, 0, 0x50},
		{OpControlWKCV1, 0, 0x58},
	}
	for _, c := range cases {
		if got := JoinHeader(c.op, c.key); got != c.b {
			t.Errorf("JoinHeader(%v,%d) = %#x, want %#x", c.op, c.key, got, c.b)
		}
		op, key := SplitHeader(c.b)
		if op != c.op || key != c.key {
			t.Errorf("SplitHeader(%#x) = %v,%d", c.b, op, key)
		}
	}
}

func TestControlVectors(t *testing.T) {
	cases := []struct {
		name string
		p    ControlPacket
		wire string
	}{
		{
			name: "client hard reset",
			p:    ControlPacket{Opcode: OpControlHardResetClientV2, SessionID: sidA},
			wire: "38 1122334455667788 00 00000000",
		},
		{
			name: "server hard reset acking 0",
			p: ControlPacket{Opcode: OpControlHardResetServerV2, SessionID: sidB,
				Acks: []uint32{0}, RemoteSessionID: sidA},
			wire: "40 a1a2a3a4a5a6a7a8 01 00000000 1122334455667788 00000000",
		},
		{
			name: "ack with two ids",
			p: ControlPacket{Opcode: OpAckV1, KeyID: 0, SessionID: sidA,
				Acks: []uint32{0, 0x01020304}, RemoteSessionID: sidB},
			wire: "28 1122334455667788 02 00000000 01020304 a1a2a3a4a5a6a7a8",
		},
		{
			name: "control with payload and ack, key 2",
			p: ControlPacket{Opcode: OpControlV1, KeyID: 2, SessionID: sidA,
				Acks: []uint32{7}, RemoteSessionID: sidB, PacketID: 0x0a, Payload: []byte{0x16, 0x03, 0x01}},
			wire: "22 1122334455667788 01 00000007 a1a2a3a4a5a6a7a8 0000000a 160301",
		},
		{
			name: "control without ack",
			p:    ControlPacket{Opcode: OpControlV1, SessionID: sidA, PacketID: 1, Payload: []byte("hi")},
			wire: "20 1122334455667788 00 00000001 6869",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := unhex(t, c.wire)
			if err := c.p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := c.p.AppendPlain([]byte{0xee})
			if !bytes.Equal(got[1:], want) || got[0] != 0xee {
				t.Fatalf("AppendPlain = %x, want ee%x", got, want)
			}
			if c.p.PlainLen() != len(want) {
				t.Fatalf("PlainLen = %d, want %d", c.p.PlainLen(), len(want))
			}
			p, err := ParseControlPlain(want)
			if err != nil {
				t.Fatalf("ParseControlPlain: %v", err)
			}
			if !reflect.DeepEqual(p, c.p) {
				t.Fatalf("parsed %+v, want %+v", p, c.p)
			}
		})
	}
}

func TestParseControlErrors(t *testing.T) {
	cases := []struct {
		name string
		wire string
		err  error
	}{
		{"empty", "", ErrShort},
		{"header only", "38 1122334455667788", ErrShort},
		{"data opcode", "48 1122334455667788 00 00000000", ErrOpcode},
		{"v1 reset", "08 1122334455667788 00 00000000", ErrOpcode},
		{"too many acks", "20 1122334455667788 09", ErrAcks},
		{"ack ids cut", "20 1122334455667788 01 000000", ErrShort},
		{"no remote session", "20 1122334455667788 01 00000000 11", ErrShort},
		{"no packet id", "20 1122334455667788 00 000000", ErrShort},
		{"ack without ids", "28 1122334455667788 00", ErrAcks},
		{"ack trailing", "28 1122334455667788 01 00000000 a1a2a3a4a5a6a7a8 ff", ErrExtra},
	}
	for _, c := range cases {
		_, err := ParseControlPlain(unhex(t, c.wire))
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []ControlPacket{
		{Opcode: OpDataV2},
		{Opcode: OpControlV1, KeyID: 8},
		{Opcode: OpControlV1, Acks: make([]uint32, 9)},
		{Opcode: OpAckV1},
		{Opcode: OpAckV1, Acks: []uint32{1}, Payload: []byte{1}},
	}
	for i, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("case %d: Validate accepted %+v", i, p)
		}
	}
}

func TestDataV2Header(t *testing.T) {
	b := AppendDataV2Header(nil, 3, 0x123456)
	if want := unhex(t, "4b 123456"); !bytes.Equal(b, want) {
		t.Fatalf("header %x, want %x", b, want)
	}
	key, peer, err := ParseDataV2Header(append(b, 0xff))
	if err != nil || key != 3 || peer != 0x123456 {
		t.Fatalf("parse = %d %#x %v", key, peer, err)
	}
	if _, _, err := ParseDataV2Header(b[:3]); !errors.Is(err, ErrShort) {
		t.Fatalf("short header: %v", err)
	}
	if _, _, err := ParseDataV2Header(unhex(t, "30 000000")); err == nil {
		t.Fatal("DATA_V1 opcode accepted as V2")
	}
}

func TestSessionID(t *testing.T) {
	a, err := NewSessionID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSessionID()
	if a == b || a.IsZero() {
		t.Fatalf("session ids %v %v", a, b)
	}
	if sidA.String() != "1122334455667788" {
		t.Fatal(sidA.String())
	}
}

func TestOpcodeString(t *testing.T) {
	if OpDataV2.String() != "P_DATA_V2" || Opcode(1).String() != "opcode(1)" {
		t.Fatal(OpDataV2.String(), Opcode(1).String())
	}
}
