package dataplane

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// lz4Block compresses p as OpenVPN's LZ4_compress_default does (a raw
// LZ4 block).
func lz4Block(t testing.TB, p []byte) []byte {
	t.Helper()
	dst := make([]byte, lz4.CompressBlockBound(len(p)))
	var c lz4.Compressor
	n, err := c.CompressBlock(p, dst)
	if err != nil || n == 0 {
		t.Fatalf("CompressBlock: %d, %v", n, err)
	}
	return dst[:n]
}

// lzoLiteral is the LZO1X stream lzo1x_1 makes of a short input: one
// literal run (first byte 17+len) and the end-of-stream M4 marker.
func lzoLiteral(p []byte) []byte {
	return append(append([]byte{byte(17 + len(p))}, p...), 0x11, 0, 0)
}

// compressible is an IP-packet-sized payload LZ4 shrinks (a ping's
// repeated pattern).
var compressible = bytes.Repeat([]byte("\x45\x00ping-pattern-0123456789"), 40)

// swapForm is the v1 swap framing of a compressed block: the block's
// first byte moved to the end, the marker in its place.
func swapForm(marker byte, block []byte) []byte {
	out := append([]byte{marker}, block[1:]...)
	return append(out, block[0])
}

// TestDecompressFraming: with allow-compression asym, each Framing
// decompresses what its header says the server compressed (LZ4 in the
// swap and v2 forms, LZO in the v1 header and v2 forms); without it the
// same packets are refused.
func TestDecompressFraming(t *testing.T) {
	block := lz4Block(t, compressible)
	if len(block) >= len(compressible) {
		t.Fatalf("test payload did not compress: %d -> %d", len(compressible), len(block))
	}
	short := []byte("hello, tunnel")
	cases := []struct {
		name string
		f    Framing
		wire []byte
		want []byte
	}{
		{"compress lz4 (swap form)", FramingStub, swapForm(lz4CompressByte, block), compressible},
		{"compress lz4-v2", FramingStubV2, append([]byte{compV2Indicator, compV2LZ4}, block...), compressible},
		{"comp-lzo yes", FramingLZOStub, append([]byte{lzoCompressByte}, lzoLiteral(short)...), short},
		{"v2 LZO", FramingStubV2, append([]byte{compV2Indicator, compV2LZO}, lzoLiteral(short)...), short},
		// Uncompressed packets still pass in every form.
		{"lz4 uncompressed", FramingStub, []byte{noCompressByteSwap, 2, 3, 1}, []byte{1, 2, 3}},
		{"lz4-v2 uncompressed", FramingStubV2, []byte{0x45, 1}, []byte{0x45, 1}},
		{"comp-lzo uncompressed", FramingLZOStub, []byte{noCompressByte, 7}, []byte{7}},
	}
	var d decompressor
	for _, c := range cases {
		got, err := c.f.unframe(bytes.Clone(c.wire), &d)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: unframe = %x, %v; want %x", c.name, got, err, c.want)
		}
		if c.wire[0] == noCompressByteSwap || c.wire[0] == noCompressByte || c.wire[0] == 0x45 {
			continue
		}
		if _, err := c.f.unframe(bytes.Clone(c.wire), nil); !errors.Is(err, errCompressed) {
			t.Errorf("%s without asym: %v, want errCompressed", c.name, err)
		}
	}
	// Corrupt data is an error, never a panic or garbage.
	for _, bad := range [][]byte{
		{compV2Indicator, compV2LZ4},
		{compV2Indicator, compV2LZ4, 0xf0},
		{compV2Indicator, compV2LZO, 0xff, 0xff},
		{compV2Indicator, 0x03, 1, 2}, // Snappy: never supported
	} {
		if _, err := FramingStubV2.unframe(bytes.Clone(bad), &d); err == nil {
			t.Errorf("unframe(%x) accepted", bad)
		}
	}
}

// FuzzDecompressUnframe: any payload, in any framing, with decompression
// on, is unframed or refused with an error, never a panic, and never
// yields more than maxDecompressed bytes.
func FuzzDecompressUnframe(f *testing.F) {
	f.Add(byte(FramingStubV2), append([]byte{compV2Indicator, compV2LZ4}, lz4Block(f, compressible)...))
	f.Add(byte(FramingStub), swapForm(lz4CompressByte, lz4Block(f, compressible)))
	f.Add(byte(FramingLZOStub), append([]byte{lzoCompressByte}, lzoLiteral([]byte("abc"))...))
	f.Add(byte(FramingStubV2), append([]byte{compV2Indicator, compV2LZO}, lzoLiteral([]byte("abc"))...))
	f.Add(byte(FramingStubV2), []byte{compV2Indicator, compV2LZO, 0x20, 0, 0})
	f.Fuzz(func(t *testing.T, fr byte, p []byte) {
		var d decompressor
		out, err := Framing(fr%4).unframe(p, &d)
		if err == nil && len(out) > maxDecompressed {
			t.Fatalf("%d bytes out", len(out))
		}
	})
}

// FuzzLZ4RoundTrip: whatever the server compresses with LZ4 comes back
// byte for byte through both LZ4 framings.
func FuzzLZ4RoundTrip(f *testing.F) {
	f.Add(compressible)
	f.Add([]byte{0x50, 0x50, 0x50, 0x50, 0x50, 0x50, 0x50, 0x50})
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) == 0 || len(p) > 1600 {
			return
		}
		dst := make([]byte, lz4.CompressBlockBound(len(p)))
		var c lz4.Compressor
		n, err := c.CompressBlock(p, dst)
		if err != nil || n == 0 {
			return // incompressible: OpenVPN sends it uncompressed
		}
		block := dst[:n]
		var d decompressor
		for _, w := range []struct {
			f    Framing
			wire []byte
		}{
			{FramingStubV2, append([]byte{compV2Indicator, compV2LZ4}, block...)},
			{FramingStub, swapForm(lz4CompressByte, block)},
		} {
			got, err := w.f.unframe(w.wire, &d)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("%v: %x, %v; want %x", w.f, got, err, p)
			}
		}
	})
}
