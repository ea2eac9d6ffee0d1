package dataplane

import (
	"bytes"
	"errors"
	"testing"
)

func TestFramingWire(t *testing.T) {
	cases := []struct {
		f       Framing
		payload string
		wire    string
	}{
		{FramingNone, "\x45\x00\x01", "\x45\x00\x01"},
		{FramingLZOStub, "\x45\x00\x01", "\xfa\x45\x00\x01"},
		{FramingLZOStub, "", "\xfa"},
		{FramingStub, "\x45\x00\x01", "\xfb\x00\x01\x45"},
		{FramingStub, "\x45", "\xfb\x45"},
		{FramingStubV2, "\x45\x00\x01", "\x45\x00\x01"},
		{FramingStubV2, "\x50\x01", "\x50\x00\x50\x01"},
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
		f    Framing
		wire []byte
	}{
		{FramingLZOStub, []byte{0x66, 1, 2}}, // LZO compressed
		{FramingLZOStub, []byte{0xfb, 1, 2}},
		{FramingStub, []byte{0x69, 1, 2}}, // LZ4 compressed
		{FramingStub, []byte{0xfa, 1, 2}},
		{FramingStubV2, []byte{0x50, 0x01, 2}}, // v2 LZ4
		{FramingStubV2, []byte{0x50}},
	}
	for _, c := range cases {
		if _, err := c.f.unframe(bytes.Clone(c.wire), nil); !errors.Is(err, errCompressed) {
			t.Errorf("%v unframe(%x) = %v, want errCompressed", c.f, c.wire, err)
		}
	}
}
