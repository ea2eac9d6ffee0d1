package ctlwrap

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingKey is bytes 0..255, the key the fixed vectors use.
func countingKey(t testing.TB) *StaticKey {
	t.Helper()
	raw := make([]byte, StaticKeyLen)
	for i := range raw {
		raw[i] = byte(i)
	}
	k, err := NewStaticKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// staticKeyText renders raw in the file format openvpn --genkey writes.
func staticKeyText(raw []byte) string {
	var sb strings.Builder
	sb.WriteString("#\n# 2048 bit OpenVPN static key\n#\n")
	sb.WriteString(staticBegin + "\n")
	for i := 0; i < len(raw); i += 16 {
		fmt.Fprintf(&sb, "%x\n", raw[i:i+16])
	}
	sb.WriteString(staticEnd + "\n")
	return sb.String()
}

func fixedClock(sec int64) func() time.Time {
	return func() time.Time { return time.Unix(sec, 0) }
}

var (
	sidClient = wire.SessionID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	sidServer = wire.SessionID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}
)

// samplePackets covers every control opcode shape.
func samplePackets() []wire.ControlPacket {
	return []wire.ControlPacket{
		{Opcode: wire.OpControlHardResetClientV2, SessionID: sidClient},
		{Opcode: wire.OpControlHardResetServerV2, SessionID: sidServer, Acks: []uint32{0}, RemoteSessionID: sidClient},
		{Opcode: wire.OpAckV1, SessionID: sidClient, Acks: []uint32{0, 1, 2}, RemoteSessionID: sidServer},
		{Opcode: wire.OpControlV1, KeyID: 3, SessionID: sidClient, Acks: []uint32{4}, RemoteSessionID: sidServer,
			PacketID: 7, Payload: []byte("\x16\x03\x01 client hello")},
		{Opcode: wire.OpControlSoftResetV1, KeyID: 1, SessionID: sidClient, PacketID: 9},
		{Opcode: wire.OpControlHardResetClientV3, SessionID: sidClient},
		{Opcode: wire.OpControlWKCV1, SessionID: sidClient, Acks: []uint32{0}, RemoteSessionID: sidServer, PacketID: 1},
	}
}
