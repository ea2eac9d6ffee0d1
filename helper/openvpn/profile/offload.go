package profile

import "slices"

// OffloadSwitches are the data path's offloads a profile switched off;
// the zero value uses each one the kernel has, and seals and opens inline.
type OffloadSwitches struct {
	// NoTUN: no IFF_VNET_HDR/TUNSETOFFLOAD (TSO/USO super-packets from
	// the device, coalesced TCP segments to it).
	NoTUN bool
	// NoUDPGSO: no UDP_SEGMENT (one buffer per run of datagrams).
	NoUDPGSO bool
	// NoUDPMmsg: no sendmmsg (one syscall per message).
	NoUDPMmsg bool
	// NoRxModeration: the UDP socket reader never puts a read off to
	// gather a busy flow's datagrams (receive moderation).
	NoRxModeration bool
	// NoTxModeration: the TUN reader never lingers after a bulk datagram
	// to send the rest of a sender's burst together (send moderation).
	NoTxModeration bool
	// ParallelCrypto: seal and open batches on worker goroutines, one per
	// core, keeping the packet order. Off unless switched on: on a 2-core
	// machine it measured no faster than inline (README).
	ParallelCrypto bool
	// NoUring: the TUN device is read with one read(2) and written with
	// one write(2) per packet, not through io_uring (one system call per
	// batch; where the kernel refuses io_uring the plane uses read(2) and
	// write(2) anyway).
	NoUring bool
}

// OffloadNames are the offloads "ovpn3go-offload NAME on|off" switches.
var OffloadNames = []string{"tun", "udp-gso", "udp-mmsg", "rx-moderation", "tx-moderation", "parallel-crypto", "uring"}

// hOffload: ovpn3go-offload tun|udp-gso|udp-mmsg|rx-moderation|tx-moderation|parallel-crypto|uring on|off.
func hOffload(ps *parser, o Option) {
	if !ps.nargs(o, 2, 2) {
		return
	}
	var off bool
	switch o.Args[1] {
	case "on":
	case "off":
		off = true
	default:
		ps.fail(o.Line, o.Name, "value %q is not on or off", o.Args[1])
		return
	}
	sw := &ps.p.Offload
	switch o.Args[0] {
	case "tun":
		sw.NoTUN = off
	case "udp-gso":
		sw.NoUDPGSO = off
	case "udp-mmsg":
		sw.NoUDPMmsg = off
	case "rx-moderation":
		sw.NoRxModeration = off
	case "tx-moderation":
		sw.NoTxModeration = off
	case "parallel-crypto":
		sw.ParallelCrypto = !off
	case "uring":
		sw.NoUring = off
	default:
		ps.fail(o.Line, o.Name, "offload %q is not one of %v", o.Args[0], slices.Clone(OffloadNames))
	}
}
