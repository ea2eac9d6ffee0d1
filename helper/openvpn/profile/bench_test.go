package profile

import (
	"os"
	"testing"
)

func BenchmarkParseAccessServerProfile(b *testing.B) {
	text, err := os.ReadFile("testdata/good/as-userlocked.ovpn")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Parse(string(text)); err != nil {
			b.Fatal(err)
		}
	}
}
