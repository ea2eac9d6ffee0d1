package datachan

import "testing"

func benchCiphers(b *testing.B, run func(b *testing.B, client, server *Key)) {
	block := countingBlock()
	// AES-256-CBC (HMAC-SHA1, NewKey's default) for the legacy path.
	for _, c := range append(SupportedCiphers(), "AES-256-CBC") {
		b.Run(c, func(b *testing.B) {
			client := mustKey(b, c, 0, block, 1)
			server := mustKey(b, c, 0, serverBlock(block), 1)
			run(b, client, server)
		})
	}
}

// BenchmarkSeal seals 1400-byte packets into a reused buffer.
func BenchmarkSeal(b *testing.B) {
	benchCiphers(b, func(b *testing.B, client, _ *Key) {
		pt := make([]byte, 1400)
		buf := make([]byte, 0, client.SealBufferLen(len(pt)))
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, err := client.Seal(buf[:0], pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpen opens 1400-byte packets (pre-sealed, so replay checks pass).
func BenchmarkOpen(b *testing.B) {
	benchCiphers(b, func(b *testing.B, client, server *Key) {
		pt := make([]byte, 1400)
		const n = 4096
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i], _ = client.Seal(nil, pt)
		}
		out := make([]byte, 0, 2048)
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		i := 0
		for b.Loop() {
			if i == n {
				// Refill with fresh ids outside the timed part.
				b.StopTimer()
				for j := range pkts {
					pkts[j], _ = client.Seal(pkts[j][:0], pt)
				}
				i = 0
				b.StartTimer()
			}
			if _, err := server.Open(out[:0], pkts[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
