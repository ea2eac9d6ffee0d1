package ctlmsg

import (
	"strconv"
	"strings"
)

// IV_PROTO capability bits. The server acts on every bit it sees, so a
// client must announce only what it implements.
const (
	ProtoDataV2        uint32 = 1 << 1  // DATA_V2 with pushed peer-id
	ProtoRequestPush   uint32 = 1 << 2  // server may push without waiting for PUSH_REQUEST
	ProtoTLSKeyExport  uint32 = 1 << 3  // key-derivation tls-ekm
	ProtoAuthPendingKW uint32 = 1 << 4  // AUTH_PENDING,timeout N
	ProtoNCPP2P        uint32 = 1 << 5  // p2p-mode negotiation; never for pull clients
	ProtoDNSOption     uint32 = 1 << 6  // deprecated v1 dns option
	ProtoCCExitNotify  uint32 = 1 << 7  // EXIT on the control channel
	ProtoAuthFailTemp  uint32 = 1 << 8  // AUTH_FAILED,TEMP
	ProtoDynTLSCrypt   uint32 = 1 << 9  // EKM-derived tls-crypt key on renegotiation
	ProtoDataEpoch     uint32 = 1 << 10 // 2.7 epoch data format
	ProtoDNSOptionV2   uint32 = 1 << 11 // 2.6+ "dns" option
	ProtoPushUpdate    uint32 = 1 << 12 // 2.7 PUSH_UPDATE
)

// PeerInfoParams says what the client announces. Every capability is off
// unless set: the function never invents one.
type PeerInfoParams struct {
	Version    string   // IV_VER
	GUIVersion string   // IV_GUI_VER, e.g. "ovpn3go 0.1"; omitted when empty
	Platform   string   // IV_PLAT; "linux" when empty
	Ciphers    []string // IV_CIPHERS, in preference order
	TCP        bool     // IV_TCPNL=1: accepts non-linear packet ids over TCP
	MTU        int      // IV_MTU: largest tun-mtu the client accepts; 0 = omit
	ProtoBits  uint32   // IV_PROTO
	// SSO lists supported AUTH_PENDING methods ("webauth,openurl,crtext");
	// IV_SSO is sent only when non-empty.
	SSO string
	// Compression framing the client can do without compressing. Real
	// compression (IV_LZO, IV_LZ4…) is never announced.
	LZOStub, CompStub, CompStubV2 bool
	// Extra are further KEY=VALUE lines (e.g. UV_* from the profile), sent
	// as given after validation: lines without '=' or with newlines are
	// dropped.
	Extra []string
}

// PeerInfo renders the peer-info block: "KEY=VALUE\n" lines in the order
// OpenVPN 2.x sends them.
func PeerInfo(p PeerInfoParams) string {
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(sanitize(v))
		b.WriteByte('\n')
	}
	line("IV_VER", p.Version)
	plat := p.Platform
	if plat == "" {
		plat = "linux"
	}
	line("IV_PLAT", plat)
	if p.TCP {
		line("IV_TCPNL", "1")
	}
	if p.MTU > 0 {
		line("IV_MTU", strconv.Itoa(p.MTU))
	}
	line("IV_NCP", "2")
	if len(p.Ciphers) > 0 {
		line("IV_CIPHERS", strings.Join(p.Ciphers, ":"))
	}
	line("IV_PROTO", strconv.FormatUint(uint64(p.ProtoBits), 10))
	if p.LZOStub {
		line("IV_LZO_STUB", "1")
	}
	if p.CompStub {
		line("IV_COMP_STUB", "1")
	}
	if p.CompStubV2 {
		line("IV_COMP_STUBv2", "1")
	}
	if p.GUIVersion != "" {
		line("IV_GUI_VER", p.GUIVersion)
	}
	if p.SSO != "" {
		line("IV_SSO", p.SSO)
	}
	for _, kv := range p.Extra {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "\n\x00 ") {
			continue
		}
		line(k, v)
	}
	return b.String()
}

// sanitize keeps one value on one line: the format has no escaping.
func sanitize(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, v)
}

// ParsePeerInfo splits a peer-info block into its variables (for tests
// and for logging what a server sent); later duplicates win.
func ParsePeerInfo(s string) map[string]string {
	m := make(map[string]string)
	for l := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}
