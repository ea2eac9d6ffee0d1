package dataplane

import (
	"errors"
	"fmt"
	"sync/atomic"

	lzo "github.com/anchore/go-lzo"
	"github.com/pierrec/lz4/v4"
)

// Compressed-payload markers (OpenVPN comp.h). This client never sends
// them; with "allow-compression asym" it accepts them from the server.
const (
	lzoCompressByte  = 0x66 // v1 header form: LZO1X follows
	lz4CompressByte  = 0x69 // v1 swap form: LZ4 block (after unswapping)
	compV2LZ4        = 0x01 // v2: 0x50 0x01 + LZ4 block
	compV2LZO        = 0x02 // v2: 0x50 0x02 + LZO1X
	maxDecompressed  = 1 << 16
	decompressBufLen = maxDecompressed
)

var errDecompress = errors.New("corrupt compressed data packet")

// decompressor undoes the server's compression of received payloads
// (decompress-only, "allow-compression asym"). It belongs to the socket
// reader; its output is valid until the next call.
type decompressor struct {
	buf   []byte
	count *atomic.Int64 // packets decompressed; may be nil
}

func (d *decompressor) done(n int) []byte {
	if d.count != nil {
		d.count.Add(1)
	}
	return d.buf[:n]
}

func (d *decompressor) out() []byte {
	if d.buf == nil {
		d.buf = make([]byte, decompressBufLen)
	}
	return d.buf
}

// lz4 decompresses one raw LZ4 block (LZ4_decompress_safe's format).
func (d *decompressor) lz4(src []byte) ([]byte, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("lz4: empty block: %w", errDecompress)
	}
	n, err := lz4.UncompressBlock(src, d.out())
	if err != nil {
		return nil, fmt.Errorf("lz4: %v: %w", err, errDecompress)
	}
	return d.done(n), nil
}

// lzo decompresses one LZO1X stream (lzo1x_decompress_safe's format).
func (d *decompressor) lzo(src []byte) ([]byte, error) {
	n, err := lzo.Decompress(src, d.out())
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errDecompress)
	}
	return d.done(n), nil
}
