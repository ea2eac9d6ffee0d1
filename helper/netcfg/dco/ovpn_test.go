package dco

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
)

// mustHex decodes an expected layout written as spaced hex.
func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func requireLE(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("byte-exact layouts below are written for little-endian hosts")
	}
}

// The layouts byte for byte, as the kernel's ovpn.h numbers them: ifindex
// is attribute 1, peer 2 (nested, NLA_F_NESTED), keyconf 3; peer id 1.
func TestPeerIDLayout(t *testing.T) {
	requireLE(t)
	got := peerIDPayload(7, 5)
	want := mustHex(t, "0800 0100 07000000  0c00 0280  0800 0100 05000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("PEER_GET/DEL payload\n got %x\nwant %x", got, want)
	}
	got = keySwapPayload(7, 5)
	want = mustHex(t, "0800 0100 07000000  0c00 0380  0800 0100 05000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("KEY_SWAP payload\n got %x\nwant %x", got, want)
	}
	got = keyDelPayload(3, 9, SlotSecondary)
	want = mustHex(t, "0800 0100 03000000  1400 0380  0800 0100 09000000  0800 0200 01000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("KEY_DEL payload\n got %x\nwant %x", got, want)
	}
}

func TestPeerNewLayout(t *testing.T) {
	requireLE(t)
	got, err := peerNewPayload(4, Peer{ID: 1, Socket: 9, Remote: netip.MustParseAddrPort("192.0.2.1:1194"),
		VPN4: netip.MustParseAddr("10.8.0.1"), KeepaliveInterval: 10, KeepaliveTimeout: 60})
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, "0800 0100 04000000"+
		"3c00 0280"+ // peer, 4 + 7 attributes of 8 bytes
		"0800 0100 01000000"+ // id
		"0800 0200 c0000201"+ // remote-ipv4, network order
		"0600 0500 04aa 0000"+ // remote-port 1194, network order, padded
		"0800 0600 09000000"+ // socket fd
		"0800 0800 0a080001"+ // vpn-ipv4
		"0800 0d00 0a000000"+ // keepalive-interval
		"0800 0e00 3c000000") // keepalive-timeout
	if !bytes.Equal(got, want) {
		t.Fatalf("PEER_NEW payload\n got %x\nwant %x", got, want)
	}
	v6, err := peerNewPayload(4, Peer{ID: 2, Socket: 3, Remote: netip.MustParseAddrPort("[2001:db8::1]:443"), VPN6: netip.MustParseAddr("fd00::1")})
	if err != nil {
		t.Fatal(err)
	}
	top, _ := parseAttrs(v6)
	p, err := parseAttrs(top[aPeer])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p[aPeerRemoteIPv6], netip.MustParseAddr("2001:db8::1").AsSlice()) || !bytes.Equal(p[aPeerVPNIPv6], netip.MustParseAddr("fd00::1").AsSlice()) ||
		!bytes.Equal(p[aPeerRemotePort], []byte{0x01, 0xbb}) {
		t.Errorf("IPv6 peer attributes %v", p)
	}
	for _, bad := range []Peer{{ID: 1 << 24, Socket: 3}, {ID: 1, Socket: -1}, {ID: 1, Socket: 3, Remote: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 0)}} {
		if _, err := peerNewPayload(1, bad); err == nil {
			t.Errorf("peer %+v accepted", bad)
		}
	}
}

func TestKeyNewLayout(t *testing.T) {
	requireLE(t)
	k := KeyConf{PeerID: 1, Slot: SlotPrimary, KeyID: 2, Cipher: CipherAESGCM,
		Encrypt: KeyDir{Key: bytes.Repeat([]byte{0xaa}, 16), NonceTail: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Decrypt: KeyDir{Key: bytes.Repeat([]byte{0xbb}, 16), NonceTail: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}}}
	got, err := keyNewPayload(5, k)
	if err != nil {
		t.Fatal(err)
	}
	keydir := func(typ string, key, tail string) string {
		// nest: 4 + cipher-key (4+16) + nonce-tail (4+8) = 36 = 0x24
		return "2400 " + typ + " 1400 0100 " + key + " 0c00 0200 " + tail
	}
	want := mustHex(t, "0800 0100 05000000"+
		"6c00 0380"+ // keyconf: 4 + 4*8 + 2*36 = 108
		"0800 0100 01000000"+ // peer-id
		"0800 0200 00000000"+ // slot
		"0800 0300 02000000"+ // key-id
		"0800 0400 01000000"+ // cipher-alg aes-gcm
		keydir("0580", strings.Repeat("aa", 16), "0102030405060708")+
		keydir("0680", strings.Repeat("bb", 16), "0807060504030201"))
	if !bytes.Equal(got, want) {
		t.Fatalf("KEY_NEW payload\n got %x\nwant %x", got, want)
	}
	for _, bad := range []KeyConf{
		{PeerID: 1, KeyID: 8, Cipher: CipherAESGCM, Encrypt: k.Encrypt, Decrypt: k.Decrypt},
		{PeerID: 1, Cipher: CipherNone, Encrypt: k.Encrypt, Decrypt: k.Decrypt},
		{PeerID: 1, Cipher: CipherChaCha20Poly1305, Encrypt: k.Encrypt, Decrypt: k.Decrypt}, // 16-byte key
		{PeerID: 1, Cipher: CipherAESGCM, Encrypt: KeyDir{Key: []byte{1}}, Decrypt: k.Decrypt},
		{PeerID: 1, Slot: 2, Cipher: CipherAESGCM, Encrypt: k.Encrypt, Decrypt: k.Decrypt},
	} {
		if _, err := keyNewPayload(5, bad); err == nil {
			t.Errorf("key %+v accepted", bad)
		}
	}
}

func TestNewLinkLayout(t *testing.T) {
	requireLE(t)
	got := newLinkPayload("ovpn0")
	want := mustHex(t, "00000000 00000000 00000000 00000000"+ // ifinfomsg
		"0a00 0300 6f76706e3000 0000"+ // IFLA_IFNAME "ovpn0\0", padded
		"1c00 1280"+ // IFLA_LINKINFO
		"0900 0100 6f76706e00 000000"+ // IFLA_INFO_KIND "ovpn\0"
		"0c00 0280 0500 0100 00 000000") // IFLA_INFO_DATA { IFLA_OVPN_MODE u8 P2P }
	if !bytes.Equal(got, want) {
		t.Fatalf("RTM_NEWLINK payload\n got %x\nwant %x", got, want)
	}
}

// PEER_GET replies carry uint counters of 4 or 8 bytes.
func TestDecodePeer(t *testing.T) {
	u64 := func(typ uint16, v uint64) attr { return attr{typ: typ, val: binary.NativeEndian.AppendUint64(nil, v)} }
	payload := appendAttrs(nil, u32Attr(aIfindex, 4), nest(aPeer,
		u32Attr(aPeerID, 3), u64(aPeerVPNRxBytes, 1<<40), u32Attr(aPeerVPNTxBytes, 77),
		u32Attr(aPeerVPNRxPackets, 5), u32Attr(aPeerVPNTxPackets, 6),
		u64(aPeerLinkRxBytes, 1000), u64(aPeerLinkTxBytes, 2000),
		u32Attr(aPeerLinkRxPackets, 7), u32Attr(aPeerLinkTxPackets, 8), u32Attr(aPeerDelReason, 2)))
	s, err := decodePeer(payload)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{PeerID: 3, VPNRxBytes: 1 << 40, VPNTxBytes: 77, VPNRxPackets: 5, VPNTxPackets: 6,
		LinkRxBytes: 1000, LinkTxBytes: 2000, LinkRxPackets: 7, LinkTxPackets: 8, DelReason: 2, HasDelReason: true}
	if s != want {
		t.Fatalf("decoded %+v, want %+v", s, want)
	}
	if s.DelReason.String() != "expired" {
		t.Errorf("reason 2 = %q, want expired", s.DelReason)
	}
	for _, bad := range [][]byte{
		payload[:len(payload)-3],                                   // truncated
		appendAttrs(nil, u32Attr(aIfindex, 4)),                     // no peer
		appendAttrs(nil, nest(aPeer, u32Attr(aPeerVPNRxBytes, 1))), // no id
	} {
		if _, err := decodePeer(bad); err == nil {
			t.Errorf("decoded %x", bad)
		}
	}
}

func TestReadReplies(t *testing.T) {
	errMsg := func(seq uint32, code int32) []byte {
		return nlmsg(unix.NLMSG_ERROR, 0, seq, binary.NativeEndian.AppendUint32(make([]byte, 0, 20), uint32(code)))
	}
	var got [][]byte
	b := append(nlmsg(0x20, 0, 7, []byte{cmdPeerGet, 1, 0, 0}), errMsg(7, 0)...)
	b = append(nlmsg(0x20, 0, 6, []byte{9, 0, 0, 0}), b...) // stale reply, ignored
	done, err := readReplies(b, 7, 0x20, &got)
	if !done || err != nil || len(got) != 1 || got[0][0] != cmdPeerGet {
		t.Fatalf("done %v err %v replies %x", done, err, got)
	}
	done, err = readReplies(errMsg(8, -int32(unix.ENOENT)), 8, 0x20, &got)
	if !done || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("error reply: %v %v", done, err)
	}
	fam := appendAttrs(genlHeader(1), u16Attr(ctrlAttrFamilyID, 0x1234), strAttr(ctrlAttrFamilyName, "ovpn"))
	if id, err := familyID([][]byte{fam}); err != nil || id != 0x1234 {
		t.Fatalf("family id %x %v", id, err)
	}
}

// TestKernelDCO runs the real module: device, peer with a connected UDP
// socket, a key, a swap, statistics, teardown. It skips only when the
// kernel has no ovpn module, and says so.
func TestKernelDCO(t *testing.T) {
	ns := nstest.New(t, "dco")
	c, err := Open(ns.Handle)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("kernel without DCO: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, why := Available(ns.Handle); !ok {
		t.Fatalf("Open worked but Available says no: %s", why)
	}
	idx, err := c.CreateDevice("ovpndco0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteDevice(idx)
	var conn *net.UDPConn
	if err := nstestRun(ns, func() (err error) {
		conn, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1194})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.NewPeer(idx, Peer{ID: 1, Socket: int(f.Fd()), Remote: netip.MustParseAddrPort("127.0.0.1:1194"), VPN4: netip.MustParseAddr("10.8.0.1")}); err != nil {
		t.Fatal(err)
	}
	key := KeyDir{Key: bytes.Repeat([]byte{1}, 32)}
	for _, slot := range []Slot{SlotPrimary, SlotSecondary} {
		if err := c.NewKey(idx, KeyConf{PeerID: 1, Slot: slot, KeyID: uint8(slot), Cipher: CipherAESGCM, Encrypt: key, Decrypt: key}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SwapKeys(idx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.SetKeepalive(idx, 1, 10, 60); err != nil {
		t.Fatal(err)
	}
	if s, err := c.PeerStats(idx, 1); err != nil || s.PeerID != 1 {
		t.Fatalf("stats %+v %v", s, err)
	}
	if err := c.DelKey(idx, 1, SlotSecondary); err != nil {
		t.Fatal(err)
	}
	if err := c.DelPeer(idx, 1); err != nil {
		t.Fatal(err)
	}
}
