// Package transporttest has fake transports for the tests of the layers
// above the transport (the data plane's and the engine's).
package transporttest

import "net"

// Discard is a transport.Conn that counts what it is given and keeps the
// last packet (in a reused buffer, so writing does not allocate once Last
// has room). Reading blocks forever.
type Discard struct {
	Bytes, Pkts int
	Last        []byte
}

func (d *Discard) ReadPacket([]byte) (int, error) { select {} }

func (d *Discard) WritePacket(p []byte) error {
	d.Bytes += len(p)
	d.Pkts++
	d.Last = append(d.Last[:0], p...)
	return nil
}

func (d *Discard) Close() error         { return nil }
func (d *Discard) Proto() string        { return "udp" }
func (d *Discard) RemoteAddr() net.Addr { return nil }
