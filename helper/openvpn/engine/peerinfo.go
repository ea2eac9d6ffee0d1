package engine

import (
	"bufio"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// defaultTunMTUMax is OpenVPN 2.6's tun-mtu-max: the largest pushed
// tun-mtu a client accepts unless the profile says otherwise.
const defaultTunMTUMax = 1600

// tunMTUMax is what the client announces as IV_MTU: tun-mtu-max, and at
// least the profile's own tun-mtu.
func tunMTUMax(p *profile.Profile, tunMTU int) int {
	m := defaultTunMTUMax
	if p.TunMTUMax > 0 {
		m = p.TunMTUMax
	}
	return max(m, tunMTU)
}

// hostInfo is what push-peer-info tells the server about this machine.
type hostInfo struct {
	hwaddr  string // MAC of the default route's interface; "" unknown
	platVer string // kernel release
	ssl     string // TLS library
}

// localHostInfo reads hostInfo from the running system.
func localHostInfo() hostInfo {
	h := hostInfo{ssl: "Go crypto/tls " + runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.platVer = unix.ByteSliceToString(u.Release[:])
	}
	if name := defaultRouteIface("/proc/net/route"); name != "" {
		if ifc, err := net.InterfaceByName(name); err == nil && len(ifc.HardwareAddr) == 6 {
			h.hwaddr = ifc.HardwareAddr.String()
		}
	}
	return h
}

// defaultRouteIface is the interface of the IPv4 default route in a
// /proc/net/route table, "" when there is none.
func defaultRouteIface(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask …
		fs := strings.Fields(sc.Text())
		if len(fs) >= 8 && fs[1] == "00000000" && fs[7] == "00000000" {
			return fs[0]
		}
	}
	return ""
}

// pushPeerInfo reports whether the profile asks for full peer info:
// push-peer-info, or Access Server's PUSH_PEER_INFO marker.
func pushPeerInfo(p *profile.Profile) bool {
	if p.PushPeerInfo {
		return true
	}
	if v, ok := p.Setenv["PUSH_PEER_INFO"]; ok && v != "0" {
		return true
	}
	v, ok := p.ASMeta["PUSH_PEER_INFO"]
	return ok && v != "0" && !strings.EqualFold(v, "false")
}

// peerInfoExtra are the peer-info lines OpenVPN 2.6 adds with
// push-peer-info (its detail level 3): IV_HWADDR, IV_SSL, IV_PLAT_VER and
// the profile's "setenv UV_*" variables, in name order. Without it none.
func peerInfoExtra(p *profile.Profile, h hostInfo) []string {
	if !pushPeerInfo(p) {
		return nil
	}
	var out []string
	if h.hwaddr != "" {
		out = append(out, "IV_HWADDR="+h.hwaddr)
	}
	out = append(out, "IV_SSL="+h.ssl)
	if h.platVer != "" {
		out = append(out, "IV_PLAT_VER="+h.platVer)
	}
	var uv []string
	for k, v := range p.Setenv {
		if strings.HasPrefix(k, "UV_") && len(k) > 3 {
			uv = append(uv, k+"="+v)
		}
	}
	slices.Sort(uv)
	return append(out, uv...)
}

// peerInfoParams is what this attempt's key-method 2 message announces.
func (a *attempt) peerInfoParams(tcp bool) ctlmsg.PeerInfoParams {
	p := a.c.cfg.Profile
	var h hostInfo
	if pushPeerInfo(p) {
		h = localHostInfo()
	}
	return ctlmsg.PeerInfoParams{
		Version:    a.c.cfg.Version,
		GUIVersion: a.c.cfg.Version,
		Ciphers:    a.o.dataCiphers,
		TCP:        tcp,
		MTU:        tunMTUMax(p, a.o.tunMTU),
		ProtoBits:  a.protoBits(),
		SSO:        ssoMethods,
		// Every framing is implemented (never compression itself), so a
		// "compress migrate" server may push stub-v2.
		LZOStub: true, CompStub: true, CompStubV2: true,
		Extra: peerInfoExtra(p, h),
	}
}

// acceptedTunMTU is the tun MTU for a pushed tun-mtu (0: none pushed): the
// pushed value unless it exceeds what the client announced in IV_MTU, as
// OpenVPN 2.6 ignores such a push; else the profile's tun-mtu.
func (a *attempt) acceptedTunMTU(pushed int) int {
	if pushed == 0 {
		return a.o.tunMTU
	}
	if m := tunMTUMax(a.c.cfg.Profile, a.o.tunMTU); pushed > m {
		a.log.Warn("pushed tun-mtu is larger than tun-mtu-max; ignored", "tun_mtu", pushed, "tun_mtu_max", m, "using", a.o.tunMTU)
		return a.o.tunMTU
	}
	return pushed
}
