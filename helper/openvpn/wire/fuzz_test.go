package wire

import (
	"bytes"
	"testing"
)

// FuzzParseControlPlain checks that parsing never panics and that whatever
// parses re-encodes to the same bytes.
func FuzzParseControlPlain(f *testing.F) {
	f.Add([]byte{0x38, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseControlPlain(b)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed packet fails Validate: %v", err)
		}
		out := p.AppendPlain(nil)
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %x, input %x", out, b)
		}
	})
}
