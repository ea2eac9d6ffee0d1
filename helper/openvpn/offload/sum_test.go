package offload

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// refSum is RFC 1071 written out: big-endian 16-bit words, an odd last
// byte padded with zero, end-around carry.
func refSum(b []byte, acc uint64) uint16 {
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return fold(acc)
}

// sum (64-bit words, little-endian, swapped) folds to the checksum of the
// plain definition for every length, alignment and accumulator, with
// data that carries in every word (all ones) and random data.
func TestSumMatchesRFC1071(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2100)
	for round := range 3 {
		for i := range buf {
			switch round {
			case 0:
				buf[i] = 0xff
			case 1:
				buf[i] = byte(rng.Uint32())
			case 2:
				buf[i] = 0
			}
		}
		for _, n := range append([]int{0, 1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1300, 1400, 1500}, rng.IntN(2000)) {
			for off := range 3 {
				for _, acc := range []uint64{0, 1, 0xffff, 0x1fffe, rng.Uint64() >> 20} {
					b := buf[off : off+n]
					if got, want := fold(sum(b, acc)), refSum(b, acc); got != want {
						t.Fatalf("round %d, %d bytes at %d, acc %#x: sum folds to %#04x, want %#04x", round, n, off, acc, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkSum1400(b *testing.B) {
	p := make([]byte, 1400)
	for i := range p {
		p[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(p)))
	var r uint16
	for b.Loop() {
		r += fold(sum(p, 0))
	}
	_ = r
}
