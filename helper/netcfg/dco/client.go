package dco

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
)

// ErrUnavailable is returned (wrapped, with the reason) when the kernel has
// no ovpn module: the generic netlink family "ovpn" does not exist.
var ErrUnavailable = errors.New("DCO unavailable")

// Generic netlink controller (linux/genetlink.h).
const (
	genlIDCtrl         = 0x10
	ctrlCmdGetFamily   = 3
	ctrlAttrFamilyID   = 1
	ctrlAttrFamilyName = 2
)

// rtnetlink link attributes (linux/if_link.h).
const (
	iflaIfname   = 3
	iflaLinkinfo = 18
	iflaInfoKind = 1
	iflaInfoData = 2
	iflaOvpnMode = 1 // IFLA_OVPN_MODE (u8)
	ovpnModeP2P  = 0
)

// socket is one netlink socket, opened inside a network namespace.
type socket struct {
	mu  sync.Mutex
	fd  int
	seq uint32
}

func openSocket(ns netns.NsHandle, proto int) (*socket, error) {
	var fd int
	err := nsexec.Run(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A kernel that never answers must not hang the caller.
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink SO_RCVTIMEO: %w", err)
	}
	return &socket{fd: fd}, nil
}

func (s *socket) close() error { return unix.Close(s.fd) }

// request sends one message and returns the payloads of the replies of
// type typ that came before the acknowledgement.
func (s *socket) request(typ, flags uint16, payload []byte) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	seq := s.seq
	msg := nlmsg(typ, flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, payload)
	if err := unix.Sendto(s.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	var replies [][]byte
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		done, err := readReplies(buf[:n], seq, typ, &replies)
		if err != nil || done {
			return replies, err
		}
	}
}

// readReplies walks the messages of one datagram; done when the
// acknowledgement (or an error) for seq arrived.
func readReplies(b []byte, seq uint32, typ uint16, replies *[][]byte) (done bool, err error) {
	for len(b) >= 16 {
		l := int(binary.NativeEndian.Uint32(b))
		if l < 16 || l > len(b) {
			return true, fmt.Errorf("netlink: malformed reply (length %d)", l)
		}
		mtyp := binary.NativeEndian.Uint16(b[4:])
		mseq := binary.NativeEndian.Uint32(b[8:])
		body := b[16:l]
		b = b[min(align4(l), len(b)):]
		if mseq != seq {
			continue // a late answer to an earlier request
		}
		switch mtyp {
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return true, errors.New("netlink: short error message")
			}
			if code := int32(binary.NativeEndian.Uint32(body)); code != 0 {
				return true, syscall.Errno(-code)
			}
			return true, nil
		case unix.NLMSG_DONE:
			return true, nil
		case typ:
			*replies = append(*replies, append([]byte(nil), body...))
		}
	}
	return false, nil
}

// Client talks to the ovpn module in one network namespace.
type Client struct {
	genl   *socket
	rt     *socket
	family uint16
}

// Open resolves the "ovpn" family in namespace ns (netns.None(): the
// process's own). Without the module the error wraps ErrUnavailable.
func Open(ns netns.NsHandle) (*Client, error) {
	genl, err := openSocket(ns, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("dco: %w", err)
	}
	fam, err := resolveFamily(genl, FamilyName)
	if err != nil {
		genl.close()
		return nil, err
	}
	rt, err := openSocket(ns, unix.NETLINK_ROUTE)
	if err != nil {
		genl.close()
		return nil, fmt.Errorf("dco: %w", err)
	}
	return &Client{genl: genl, rt: rt, family: fam}, nil
}

// Available reports whether the kernel in namespace ns offers DCO, and
// if not, why.
func Available(ns netns.NsHandle) (bool, string) {
	c, err := Open(ns)
	if err != nil {
		return false, err.Error()
	}
	c.Close()
	return true, ""
}

func resolveFamily(s *socket, name string) (uint16, error) {
	payload := append(genlHeader(ctrlCmdGetFamily), appendAttrs(nil, strAttr(ctrlAttrFamilyName, name))...)
	payload[1] = 1 // the controller's version
	replies, err := s.request(genlIDCtrl, 0, payload)
	if errors.Is(err, unix.ENOENT) {
		return 0, fmt.Errorf("%w: the kernel has no %q generic netlink family (ovpn module missing; Linux 6.16+ or ovpn-backports needed)", ErrUnavailable, name)
	}
	if err != nil {
		return 0, fmt.Errorf("dco: resolve family %q: %w", name, err)
	}
	return familyID(replies)
}

func familyID(replies [][]byte) (uint16, error) {
	for _, r := range replies {
		if len(r) < 4 {
			continue
		}
		as, err := parseAttrs(r[4:])
		if err != nil {
			return 0, fmt.Errorf("dco: family reply: %w", err)
		}
		if v, ok := as[ctrlAttrFamilyID]; ok && len(v) == 2 {
			return binary.NativeEndian.Uint16(v), nil
		}
	}
	return 0, errors.New("dco: family reply without an id")
}

// Close releases the sockets.
func (c *Client) Close() error { return errors.Join(c.genl.close(), c.rt.close()) }

func (c *Client) do(cmd uint8, attrs []byte) ([][]byte, error) {
	return c.genl.request(c.family, 0, append(genlHeader(cmd), attrs...))
}

// newLinkPayload is the RTM_NEWLINK body creating a P2P ovpn device.
func newLinkPayload(name string) []byte {
	ifinfo := make([]byte, 16) // struct ifinfomsg, all zero: AF_UNSPEC
	return appendAttrs(ifinfo, strAttr(iflaIfname, name),
		nest(iflaLinkinfo, strAttr(iflaInfoKind, "ovpn"), nest(iflaInfoData, u8Attr(iflaOvpnMode, ovpnModeP2P))))
}

// CreateDevice creates a client-mode ovpn device called name and returns
// its index.
func (c *Client) CreateDevice(name string) (int, error) {
	if len(name) == 0 || len(name) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("dco: invalid device name %q", name)
	}
	if _, err := c.rt.request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, newLinkPayload(name)); err != nil {
		return 0, fmt.Errorf("dco: create device %s: %w", name, err)
	}
	ifinfo := make([]byte, 16)
	replies, err := c.rt.request(unix.RTM_GETLINK, 0, appendAttrs(ifinfo, strAttr(iflaIfname, name)))
	if err != nil || len(replies) == 0 || len(replies[0]) < 16 {
		return 0, fmt.Errorf("dco: look up device %s: %v", name, err)
	}
	return int(int32(binary.NativeEndian.Uint32(replies[0][4:]))), nil
}

// DeleteDevice removes the device.
func (c *Client) DeleteDevice(ifindex int) error {
	ifinfo := make([]byte, 16)
	binary.NativeEndian.PutUint32(ifinfo[4:], uint32(ifindex))
	if _, err := c.rt.request(unix.RTM_DELLINK, 0, ifinfo); err != nil {
		return fmt.Errorf("dco: delete device %d: %w", ifindex, err)
	}
	return nil
}

// NewPeer hands the server's connected transport socket (a descriptor of
// this process) and addresses to the kernel.
func (c *Client) NewPeer(ifindex int, p Peer) error {
	payload, err := peerNewPayload(ifindex, p)
	if err != nil {
		return fmt.Errorf("dco: new peer: %w", err)
	}
	if _, err := c.do(cmdPeerNew, payload); err != nil {
		return fmt.Errorf("dco: new peer %d: %w", p.ID, err)
	}
	return nil
}

// SetKeepalive makes the kernel send pings every interval seconds and drop
// the peer after timeout seconds of silence.
func (c *Client) SetKeepalive(ifindex int, peerID, interval, timeout uint32) error {
	if _, err := c.do(cmdPeerSet, peerSetKeepalivePayload(ifindex, peerID, interval, timeout)); err != nil {
		return fmt.Errorf("dco: set keepalive of peer %d: %w", peerID, err)
	}
	return nil
}

// NewKey installs a key in its slot.
func (c *Client) NewKey(ifindex int, k KeyConf) error {
	payload, err := keyNewPayload(ifindex, k)
	if err != nil {
		return fmt.Errorf("dco: new key: %w", err)
	}
	if _, err := c.do(cmdKeyNew, payload); err != nil {
		return fmt.Errorf("dco: new key %d for peer %d: %w", k.KeyID, k.PeerID, err)
	}
	return nil
}

// SwapKeys makes the secondary key primary (after a renegotiation).
func (c *Client) SwapKeys(ifindex int, peerID uint32) error {
	if _, err := c.do(cmdKeySwap, keySwapPayload(ifindex, peerID)); err != nil {
		return fmt.Errorf("dco: swap keys of peer %d: %w", peerID, err)
	}
	return nil
}

// DelKey removes the key in slot.
func (c *Client) DelKey(ifindex int, peerID uint32, slot Slot) error {
	if _, err := c.do(cmdKeyDel, keyDelPayload(ifindex, peerID, slot)); err != nil {
		return fmt.Errorf("dco: delete key of peer %d: %w", peerID, err)
	}
	return nil
}

// PeerStats reads the peer's counters.
func (c *Client) PeerStats(ifindex int, peerID uint32) (Stats, error) {
	replies, err := c.do(cmdPeerGet, peerIDPayload(ifindex, peerID))
	if err != nil {
		return Stats{}, fmt.Errorf("dco: get peer %d: %w", peerID, err)
	}
	for _, r := range replies {
		if len(r) >= 4 && r[0] == cmdPeerGet {
			return decodePeer(r[4:])
		}
	}
	return Stats{}, fmt.Errorf("dco: get peer %d: no peer in the reply", peerID)
}

// DelPeer removes the peer (and with it its keys).
func (c *Client) DelPeer(ifindex int, peerID uint32) error {
	if _, err := c.do(cmdPeerDel, peerIDPayload(ifindex, peerID)); err != nil {
		return fmt.Errorf("dco: delete peer %d: %w", peerID, err)
	}
	return nil
}
