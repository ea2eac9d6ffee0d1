// Package dco drives the Linux kernel's OpenVPN data channel offload, the
// in-kernel "ovpn" module (Linux 6.16+): it detects the generic netlink
// family "ovpn", creates an ovpn device (rtnetlink kind "ovpn", P2P mode),
// hands the connected transport socket to the kernel as a peer, installs,
// swaps and deletes data channel keys and reads the peer's statistics.
//
// The attribute layouts follow the kernel's uapi (include/uapi/linux/ovpn.h,
// generated from Documentation/netlink/specs/ovpn.yaml): attribute numbers
// are the positions in the spec's attribute sets, counted from 1.
package dco

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// FamilyName is the generic netlink family of the in-kernel module.
const FamilyName = "ovpn"

// familyVersion is the family's version.
const familyVersion = 1

// Commands (enum ovpn_nl_commands, from 1).
const (
	cmdPeerNew    = 1
	cmdPeerSet    = 2
	cmdPeerGet    = 3
	cmdPeerDel    = 4
	cmdPeerDelNtf = 5
	cmdKeyNew     = 6
	cmdKeyGet     = 7
	cmdKeySwap    = 8
	cmdKeySwapNtf = 9
	cmdKeyDel     = 10
)

// Top-level attributes (attribute set "ovpn").
const (
	aIfindex = 1
	aPeer    = 2
	aKeyconf = 3
)

// Peer attributes (attribute set "peer").
const (
	aPeerID                = 1
	aPeerRemoteIPv4        = 2
	aPeerRemoteIPv6        = 3
	aPeerRemoteIPv6ScopeID = 4
	aPeerRemotePort        = 5
	aPeerSocket            = 6
	aPeerSocketNetnsid     = 7
	aPeerVPNIPv4           = 8
	aPeerVPNIPv6           = 9
	aPeerLocalIPv4         = 10
	aPeerLocalIPv6         = 11
	aPeerLocalPort         = 12
	aPeerKeepaliveInterval = 13
	aPeerKeepaliveTimeout  = 14
	aPeerDelReason         = 15
	aPeerVPNRxBytes        = 16
	aPeerVPNTxBytes        = 17
	aPeerVPNRxPackets      = 18
	aPeerVPNTxPackets      = 19
	aPeerLinkRxBytes       = 20
	aPeerLinkTxBytes       = 21
	aPeerLinkRxPackets     = 22
	aPeerLinkTxPackets     = 23
)

// Key configuration attributes (sets "keyconf" and "keydir").
const (
	aKeyconfPeerID     = 1
	aKeyconfSlot       = 2
	aKeyconfKeyID      = 3
	aKeyconfCipherAlg  = 4
	aKeyconfEncryptDir = 5
	aKeyconfDecryptDir = 6

	aKeydirCipherKey = 1
	aKeydirNonceTail = 2
)

// NonceTailSize is the implicit IV part each direction's key carries.
const NonceTailSize = 8

// CipherAlg is the data channel cipher (enum ovpn_cipher_alg).
type CipherAlg uint32

const (
	CipherNone             CipherAlg = 0
	CipherAESGCM           CipherAlg = 1
	CipherChaCha20Poly1305 CipherAlg = 2
)

// CipherFor maps an OpenVPN data-cipher name to the kernel's algorithm;
// ok is false for ciphers the kernel cannot run (CBC, BF, …).
func CipherFor(name string) (alg CipherAlg, ok bool) {
	switch name {
	case "AES-128-GCM", "AES-192-GCM", "AES-256-GCM":
		return CipherAESGCM, true
	case "CHACHA20-POLY1305":
		return CipherChaCha20Poly1305, true
	}
	return 0, false
}

// Slot is where a key lives (enum ovpn_key_slot).
type Slot uint32

const (
	SlotPrimary   Slot = 0
	SlotSecondary Slot = 1
)

// DelReason is why the kernel removed a peer (enum ovpn_del_peer_reason).
type DelReason uint32

var delReasons = []string{"teardown", "userspace", "expired", "transport-error", "transport-disconnect"}

func (r DelReason) String() string {
	if int(r) < len(delReasons) {
		return delReasons[r]
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// Peer is the server as the kernel sees it: its peer-id, the transport
// socket (a file descriptor of the calling process) and addresses.
type Peer struct {
	ID     uint32
	Socket int
	// Remote is the server's transport address (UDP; for TCP the
	// connected socket says it all and Remote may be zero).
	Remote netip.AddrPort
	// Local is the local transport address (UDP only; may be zero).
	Local netip.AddrPort
	// VPN4 and VPN6 are the server's addresses inside the tunnel.
	VPN4, VPN6 netip.Addr
	// KeepaliveInterval and KeepaliveTimeout are in seconds; zero leaves
	// them unset.
	KeepaliveInterval, KeepaliveTimeout uint32
}

// KeyDir is one direction's key material.
type KeyDir struct {
	Key       []byte
	NonceTail [NonceTailSize]byte
}

// KeyConf is one data channel key for a peer.
type KeyConf struct {
	PeerID           uint32
	Slot             Slot
	KeyID            uint8 // 0..7
	Cipher           CipherAlg
	Encrypt, Decrypt KeyDir
}

// Stats are a peer's counters (PEER_GET).
type Stats struct {
	PeerID                               uint32
	VPNRxBytes, VPNTxBytes, VPNRxPackets uint64
	VPNTxPackets                         uint64
	LinkRxBytes, LinkTxBytes             uint64
	LinkRxPackets, LinkTxPackets         uint64
	DelReason                            DelReason
	HasDelReason                         bool
}

func addrAttrs(v4, v6 uint16, a netip.Addr) []attr {
	if !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return []attr{bytesAttr(v4, b[:])} // big-endian u32 = the address bytes
	}
	b := a.As16()
	return []attr{bytesAttr(v6, b[:])}
}

// peerAttrs encodes p for PEER_NEW (withSocket) or PEER_SET.
func peerAttrs(p Peer, withSocket bool) ([]attr, error) {
	if p.ID > 0xFFFFFF {
		return nil, fmt.Errorf("peer id %d out of range (24 bits)", p.ID)
	}
	as := []attr{u32Attr(aPeerID, p.ID)}
	if p.Remote.IsValid() {
		as = append(as, addrAttrs(aPeerRemoteIPv4, aPeerRemoteIPv6, p.Remote.Addr())...)
		if p.Remote.Port() == 0 {
			return nil, fmt.Errorf("remote %v: no port", p.Remote)
		}
		as = append(as, be16Attr(aPeerRemotePort, p.Remote.Port()))
	}
	if withSocket {
		if p.Socket < 0 {
			return nil, fmt.Errorf("invalid socket descriptor %d", p.Socket)
		}
		as = append(as, u32Attr(aPeerSocket, uint32(p.Socket)))
	}
	as = append(as, addrAttrs(aPeerVPNIPv4, aPeerVPNIPv6, p.VPN4)...)
	as = append(as, addrAttrs(aPeerVPNIPv4, aPeerVPNIPv6, p.VPN6)...)
	if p.Local.IsValid() {
		as = append(as, addrAttrs(aPeerLocalIPv4, aPeerLocalIPv6, p.Local.Addr())...)
	}
	if p.KeepaliveInterval != 0 || p.KeepaliveTimeout != 0 {
		as = append(as, u32Attr(aPeerKeepaliveInterval, p.KeepaliveInterval), u32Attr(aPeerKeepaliveTimeout, p.KeepaliveTimeout))
	}
	return as, nil
}

func keydir(t uint16, d KeyDir) attr {
	return nest(t, bytesAttr(aKeydirCipherKey, d.Key), bytesAttr(aKeydirNonceTail, d.NonceTail[:]))
}

func (k KeyConf) check() error {
	switch {
	case k.PeerID > 0xFFFFFF:
		return fmt.Errorf("peer id %d out of range (24 bits)", k.PeerID)
	case k.KeyID > 7:
		return fmt.Errorf("key id %d out of range 0..7", k.KeyID)
	case k.Slot > SlotSecondary:
		return fmt.Errorf("invalid key slot %d", k.Slot)
	case k.Cipher != CipherAESGCM && k.Cipher != CipherChaCha20Poly1305:
		return fmt.Errorf("cipher %d cannot run in the kernel", k.Cipher)
	}
	for _, d := range []KeyDir{k.Encrypt, k.Decrypt} {
		if n := len(d.Key); n != 16 && n != 24 && n != 32 || k.Cipher == CipherChaCha20Poly1305 && n != 32 {
			return fmt.Errorf("key of %d bytes for cipher %d", n, k.Cipher)
		}
	}
	return nil
}

// Request payloads (the attributes after the generic netlink header).

func peerNewPayload(ifindex int, p Peer) ([]byte, error) {
	as, err := peerAttrs(p, true)
	if err != nil {
		return nil, err
	}
	return appendAttrs(nil, u32Attr(aIfindex, uint32(ifindex)), nest(aPeer, as...)), nil
}

func peerSetKeepalivePayload(ifindex int, peerID, interval, timeout uint32) []byte {
	return appendAttrs(nil, u32Attr(aIfindex, uint32(ifindex)), nest(aPeer,
		u32Attr(aPeerID, peerID), u32Attr(aPeerKeepaliveInterval, interval), u32Attr(aPeerKeepaliveTimeout, timeout)))
}

func peerIDPayload(ifindex int, peerID uint32) []byte {
	return appendAttrs(nil, u32Attr(aIfindex, uint32(ifindex)), nest(aPeer, u32Attr(aPeerID, peerID)))
}

func keyNewPayload(ifindex int, k KeyConf) ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return appendAttrs(nil, u32Attr(aIfindex, uint32(ifindex)), nest(aKeyconf,
		u32Attr(aKeyconfPeerID, k.PeerID), u32Attr(aKeyconfSlot, uint32(k.Slot)),
		u32Attr(aKeyconfKeyID, uint32(k.KeyID)), u32Attr(aKeyconfCipherAlg, uint32(k.Cipher)),
		keydir(aKeyconfEncryptDir, k.Encrypt), keydir(aKeyconfDecryptDir, k.Decrypt))), nil
}

func keySwapPayload(ifindex int, peerID uint32) []byte {
	return appendAttrs(nil, u32Attr(aIfindex, uint32(ifindex)), nest(aKeyconf, u32Attr(aKeyconfPeerID, peerID)))
}

func keyDelPayload(ifindex int, peerID uint32, slot Slot) []byte {
	return appendAttrs(nil, u32Attr(aIfindex, uint32(ifindex)), nest(aKeyconf,
		u32Attr(aKeyconfPeerID, peerID), u32Attr(aKeyconfSlot, uint32(slot))))
}

// decodePeer reads a PEER_GET reply or PEER_DEL_NTF payload.
func decodePeer(payload []byte) (Stats, error) {
	top, err := parseAttrs(payload)
	if err != nil {
		return Stats{}, fmt.Errorf("ovpn peer message: %w", err)
	}
	nested, ok := top[aPeer]
	if !ok {
		return Stats{}, fmt.Errorf("ovpn peer message without a peer attribute")
	}
	p, err := parseAttrs(nested)
	if err != nil {
		return Stats{}, fmt.Errorf("ovpn peer attribute: %w", err)
	}
	var s Stats
	var okID bool
	if s.PeerID, okID = p.u32(aPeerID); !okID {
		return Stats{}, fmt.Errorf("ovpn peer attribute without an id")
	}
	for t, dst := range map[uint16]*uint64{
		aPeerVPNRxBytes: &s.VPNRxBytes, aPeerVPNTxBytes: &s.VPNTxBytes,
		aPeerVPNRxPackets: &s.VPNRxPackets, aPeerVPNTxPackets: &s.VPNTxPackets,
		aPeerLinkRxBytes: &s.LinkRxBytes, aPeerLinkTxBytes: &s.LinkTxBytes,
		aPeerLinkRxPackets: &s.LinkRxPackets, aPeerLinkTxPackets: &s.LinkTxPackets,
	} {
		if v, ok := p.uint(t); ok {
			*dst = v
		}
	}
	if r, ok := p.u32(aPeerDelReason); ok {
		s.DelReason, s.HasDelReason = DelReason(r), true
	}
	return s, nil
}

// genlHeader is the generic netlink header: command, version, reserved.
func genlHeader(cmd uint8) []byte { return []byte{cmd, familyVersion, 0, 0} }

// nlmsg wraps a payload in a netlink header.
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload))
	binary.NativeEndian.PutUint32(b[0:], uint32(16+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, payload...)
}
