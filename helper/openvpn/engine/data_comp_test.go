package engine

import (
	"bytes"
	"errors"
	"testing"
)

func TestFramingWire(t *testing.T) {
	cases := []struct {
		f       framing
		payload string
		wire    string
	}{
		{framingNone, "\x45\x00\x01", "\x45\x00\x01"},
		{framingLZOStub, "\x45\x00\x01", "\xfa\x45\x00\x01"},
		{framingLZOStub, "", "\xfa"},
		{framingStub, "\x45\x00\x01", "\xfb\x00\x01\x45"},
		{framingStub, "\x45", "\xfb\x45"},
		{framingStubV2, "\x45\x00\x01", "\x45\x00\x01"},
		{framingStubV2, "\x50\x01", "\x50\x00\x50\x01"},
	}
	for _, c := range cases {
		buf := make([]byte, frameHeadroom+len(c.payload)+frameTailroom)
		copy(buf[frameHeadroom:], c.payload)
		got := c.f.frame(buf, frameHeadroom, len(c.payload))
		if string(got) != c.wire {
			t.Errorf("%v frame(%x) = %x, want %x", c.f, c.payload, got, c.wire)
		}
		back, err := c.f.unframe([]byte(c.wire), nil)
		if err != nil || string(back) != c.payload {
			t.Errorf("%v unframe(%x) = %x, %v; want %x", c.f, c.wire, back, err, c.payload)
		}
	}
}

func TestFramingRefusesCompressed(t *testing.T) {
	cases := []struct {
		f    framing
		wire []byte
	}{
		{framingLZOStub, []byte{0x66, 1, 2}}, // LZO compressed
		{framingLZOStub, []byte{0xfb, 1, 2}},
		{framingStub, []byte{0x69, 1, 2}}, // LZ4 compressed
		{framingStub, []byte{0xfa, 1, 2}},
		{framingStubV2, []byte{0x50, 0x01, 2}}, // v2 LZ4
		{framingStubV2, []byte{0x50}},
	}
	for _, c := range cases {
		if _, err := c.f.unframe(bytes.Clone(c.wire), nil); !errors.Is(err, errCompressed) {
			t.Errorf("%v unframe(%x) = %v, want errCompressed", c.f, c.wire, err)
		}
	}
}
