package datachan

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary packets to Open: never a panic, and anything
// accepted must be what the peer sealed (only the seeds can be).
func FuzzOpen(f *testing.F) {
	block := countingBlock()
	for _, v := range openVectors {
		f.Add(v.cipher, unhex(f, v.wire))
	}
	srv := mustKey(f, "AES-256-GCM", 0, serverBlock(block), 0)
	p, _ := srv.Seal(nil, []byte("seed"))
	f.Add("AES-256-GCM", p)
	f.Add("AES-128-GCM", []byte{0x48, 0, 0, 0})
	f.Add("nonsense", []byte{})
	for _, v := range cbcOpenVectors {
		f.Add(v.cipher, unhex(f, v.packet))
	}
	f.Fuzz(func(t *testing.T, cipher string, pkt []byte) {
		var keyID uint8
		if len(pkt) > 0 {
			keyID = pkt[0] & 7
		}
		k, err := NewKey(cipher, keyID, block, 0)
		if err != nil {
			return
		}
		in := bytes.Clone(pkt)
		out, err := k.Open(make([]byte, 0, 8), in)
		if !bytes.Equal(in, pkt) {
			t.Fatal("Open modified a packet it did not share with dst")
		}
		if err != nil {
			return
		}
		if k.cbc != nil {
			if len(out) > len(pkt)-(k.cbc.macLen+cbcBlockLen+PacketIDLen+1) {
				t.Fatalf("CBC plaintext length %d for %d-byte packet", len(out), len(pkt))
			}
			return
		}
		if len(out) != len(pkt)-(k.Overhead()-k.headerLen()+headerLenOf(pkt[0])) {
			t.Fatalf("plaintext length %d for %d-byte packet", len(out), len(pkt))
		}
	})
}

func headerLenOf(b byte) int {
	if b>>3 == 9 {
		return 4
	}
	return 1
}
