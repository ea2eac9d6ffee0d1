package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// Variant names one server/profile combination of the test bed.
type Variant string

// The nine variants; every one uses dev tun, topology subnet, the tunnel
// 198.19.0.0/24 and pushes the route to 198.19.1.0/24 plus DNS settings.
const (
	VariantA Variant = "a" // UDP, AES-256-GCM, tls-crypt (2.6 defaults)
	VariantB Variant = "b" // TCP, otherwise as a
	VariantC Variant = "c" // tls-auth (key-direction 1, auth SHA256), server allows only AES-128-GCM
	VariantD Variant = "d" // server allows only CHACHA20-POLY1305, tls-crypt
	VariantE Variant = "e" // tls-crypt-v2
	VariantF Variant = "f" // auth-user-pass, no client certificate
	VariantG Variant = "g" // certificate + auth-user-pass + static-challenge
	VariantH Variant = "h" // legacy AES-256-CBC / SHA256, tls-auth
	VariantI Variant = "i" // UDP over IPv6, dual-stack tunnel
)

// Variants lists all variants in order.
var Variants = []Variant{VariantA, VariantB, VariantC, VariantD, VariantE, VariantF, VariantG, VariantH, VariantI}

// Credentials the auth-verify script of variants f and g accepts.
const (
	TestUser = "testuser"
	TestPass = "testpass"
	TestOTP  = "123456" // static-challenge response (variant g)
)

var variantNames = map[Variant]string{
	VariantA: "udp-aes256gcm-tlscrypt",
	VariantB: "tcp-aes256gcm-tlscrypt",
	VariantC: "udp-aes128gcm-tlsauth",
	VariantD: "udp-chacha20poly1305-tlscrypt",
	VariantE: "udp-tlscryptv2",
	VariantF: "udp-userpass-nocert",
	VariantG: "udp-cert-userpass-staticchallenge",
	VariantH: "udp-legacy-aes256cbc-sha256-tlsauth",
	VariantI: "udp6-dualstack-tunnel",
}

// Name is the descriptive name of the variant, e.g. "udp-aes256gcm-tlscrypt".
func (v Variant) Name() string { return variantNames[v] }

func (v Variant) check() error {
	if _, ok := variantNames[v]; !ok {
		return fmt.Errorf("unknown test-bed variant %q (want one of a-i)", string(v))
	}
	return nil
}

// ServerConfig returns the openvpn server configuration of variant v.
// statusPath is the status file; authScript is the auth-user-pass-verify
// script (used by f and g only).
func ServerConfig(pki *PKIFiles, v Variant, statusPath, authScript string) (string, error) {
	return ServerConfigWith(pki, v, statusPath, authScript, ServerOptions{})
}

// The transports a variant can be run over (ServerOptions.Proto).
const (
	ProtoUDP  = "udp"
	ProtoTCP  = "tcp"
	ProtoUDP6 = "udp6"
	ProtoTCP6 = "tcp6"
)

// DefaultProto is the transport of variant v as the test bed defines it:
// tcp for b, udp6 for i, udp for the rest.
func (v Variant) DefaultProto() string {
	switch v {
	case VariantB:
		return ProtoTCP
	case VariantI:
		return ProtoUDP6
	}
	return ProtoUDP
}

// protoFor resolves the transport: proto as asked, or the variant's own.
func protoFor(v Variant, proto string) (string, error) {
	switch proto {
	case "":
		return v.DefaultProto(), nil
	case ProtoUDP, ProtoTCP, ProtoUDP6, ProtoTCP6:
		return proto, nil
	}
	return "", fmt.Errorf("test-bed transport %q: want udp, tcp, udp6 or tcp6", proto)
}

func isUDP(proto string) bool  { return strings.HasPrefix(proto, "udp") }
func isIPv6(proto string) bool { return strings.HasSuffix(proto, "6") }

// ServerConfigWith is ServerConfig with the options that change the
// configuration itself (Proto, TLSCryptV2ForceCookie, Compress, AuthGenToken,
// Extra); the defaults give exactly ServerConfig's text.
func ServerConfigWith(pki *PKIFiles, v Variant, statusPath, authScript string, opts ServerOptions) (string, error) {
	if err := v.check(); err != nil {
		return "", err
	}
	proto, err := protoFor(v, opts.Proto)
	if err != nil {
		return "", err
	}
	if opts.Compress != "" && opts.CompLZONo {
		return "", fmt.Errorf("compress %s and comp-lzo no are two framings; choose one", opts.Compress)
	}
	if opts.TLSCryptV2ForceCookie && v != VariantE {
		return "", fmt.Errorf("force-cookie needs tls-crypt-v2, i.e. variant e, not %s", v)
	}
	if opts.AuthGenToken && v != VariantF && v != VariantG {
		return "", fmt.Errorf("auth-gen-token needs username/password authentication, i.e. variant f or g, not %s", v)
	}
	switch opts.Compress {
	case "", "stub", "stub-v2", "lzo", "lz4", "lz4-v2":
	default:
		return "", fmt.Errorf("compress %q: want stub, stub-v2, lzo, lz4 or lz4-v2", opts.Compress)
	}
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("# test-bed variant %s: %s", v, v.Name())
	switch {
	case v == VariantB && proto == ProtoTCP:
		line("proto tcp-server") // as the reference scripts have it: no local
	case proto == ProtoTCP:
		line("proto tcp-server")
		line("local %s", ServerIP4)
	case proto == ProtoTCP6:
		line("proto tcp6-server")
		line("local %s", ServerIP6)
	case proto == ProtoUDP6:
		line("proto udp6")
		line("local %s", ServerIP6)
	default:
		line("proto udp")
		line("local %s", ServerIP4)
	}
	line("port %d", Port)
	line("dev tun")
	line("topology subnet")
	line("server %s 255.255.255.0", TunnelNet4)
	line("ca %s", pki.CACert)
	line("cert %s", pki.ServerCert)
	line("key %s", pki.ServerKey)
	line("dh none")
	line("keepalive 10 60")
	line("persist-key")
	line("persist-tun")
	line("disable-dco")
	line(`push "route 198.19.1.0 255.255.255.0"`)
	line(`push "dhcp-option DNS %s"`, TunnelServer4)
	line(`push "dhcp-option DOMAIN testbed.example"`)
	line(`push "dns server 1 address %s"`, TunnelServer4)
	line(`push "dns search-domains testbed.example"`)
	line("status %s 1", statusPath)
	line("verb 3")
	switch v {
	case VariantC:
		line("tls-auth %s 0", pki.TLSAuth)
		line("auth SHA256")
		line("data-ciphers AES-128-GCM")
	case VariantD:
		line("tls-crypt %s", pki.TLSCrypt)
		line("data-ciphers CHACHA20-POLY1305")
	case VariantE:
		if opts.TLSCryptV2ForceCookie {
			line("tls-crypt-v2 %s force-cookie", pki.TLSCryptV2Server)
		} else {
			line("tls-crypt-v2 %s", pki.TLSCryptV2Server)
		}
	case VariantF:
		line("tls-crypt %s", pki.TLSCrypt)
		line("verify-client-cert none")
		line("username-as-common-name")
		line("script-security 2")
		line(`auth-user-pass-verify "%s plain" via-file`, authScript)
	case VariantG:
		line("tls-crypt %s", pki.TLSCrypt)
		line("script-security 2")
		line(`auth-user-pass-verify "%s scrv1" via-file`, authScript)
	case VariantH:
		line("tls-auth %s 0", pki.TLSAuth)
		line("auth SHA256")
		line("data-ciphers AES-256-CBC")
		line("data-ciphers-fallback AES-256-CBC")
	case VariantI:
		line("tls-crypt %s", pki.TLSCrypt)
		line("server-ipv6 %s", TunnelNet6)
		line(`push "route-ipv6 2001:2:0:9::/64"`)
		line(`push "dhcp-option DNS6 %s"`, TunnelServer6)
		line(`push "dns server 2 address %s"`, TunnelServer6)
	default:
		line("tls-crypt %s", pki.TLSCrypt)
	}
	if isUDP(proto) { // openvpn refuses explicit-exit-notify over TCP
		line("explicit-exit-notify 1")
	}
	if opts.Compress != "" {
		// 2.6's allow-compression default ("no") still takes the stub
		// framings; real algorithms need "allow-compression yes".
		if !strings.HasPrefix(opts.Compress, "stub") {
			line("allow-compression yes")
		}
		line("compress %s", opts.Compress)
		line(`push "compress %s"`, opts.Compress)
	}
	if opts.CompLZONo {
		line("comp-lzo no")
		line(`push "comp-lzo no"`)
	}
	if opts.AuthGenToken {
		line("auth-gen-token")
	}
	if len(opts.Extra) > 0 {
		b.WriteString("# extra lines\n" + strings.Join(opts.Extra, "\n") + "\n")
	}
	return b.String(), nil
}

// Profile returns the client profile of variant v as a user would import
// it: every key and certificate as an inline block.
func (f *PKIFiles) Profile(v Variant) (string, error) {
	return f.ProfileProto(v, "")
}

// ProfileProto is Profile over another transport (ProtoTCP, …; "" is the
// variant's own), matching a server started with that ServerOptions.Proto.
func (f *PKIFiles) ProfileProto(v Variant, proto string) (string, error) {
	if err := v.check(); err != nil {
		return "", err
	}
	proto, err := protoFor(v, proto)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	inline := func(tag, path string) error {
		content, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("profile %s: %w", v, err)
		}
		line("<%s>", tag)
		for _, l := range strings.SplitAfter(string(content), "\n") {
			// Static key files start with comment lines; PEM never does.
			if l != "" && !strings.HasPrefix(l, "#") {
				b.WriteString(l)
			}
		}
		line("</%s>", tag)
		return nil
	}
	line("# OpenVPN test bed profile, variant %s: %s", v, v.Name())
	line("client")
	line("dev tun")
	line("proto %s", proto)
	if isIPv6(proto) {
		line("remote %s %d", ServerIP6, Port)
	} else {
		line("remote %s %d", ServerIP4, Port)
	}
	line("nobind")
	line("remote-cert-tls server")
	line("verb 3")
	switch v {
	case VariantC:
		line("auth SHA256")
		line("key-direction 1")
	case VariantF:
		line("auth-user-pass")
	case VariantG:
		line("auth-user-pass")
		line(`static-challenge "Enter PIN (%s)" 1`, TestOTP)
	case VariantH:
		line("cipher AES-256-CBC")
		line("auth SHA256")
		line("key-direction 1")
	}
	if isUDP(proto) {
		line("explicit-exit-notify")
	}
	blocks := [][2]string{{"ca", f.CACert}}
	if v != VariantF {
		blocks = append(blocks, [2]string{"cert", f.ClientCert}, [2]string{"key", f.ClientKey})
	}
	switch v {
	case VariantC, VariantH:
		blocks = append(blocks, [2]string{"tls-auth", f.TLSAuth})
	case VariantE:
		blocks = append(blocks, [2]string{"tls-crypt-v2", f.TLSCryptV2Client})
	default:
		blocks = append(blocks, [2]string{"tls-crypt", f.TLSCrypt})
	}
	for _, blk := range blocks {
		if err := inline(blk[0], blk[1]); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// authVerifyScript checks the via-file credentials of variants f ("plain":
// user and password) and g ("scrv1": password = SCRV1:b64(pass):b64(otp))
// against user, pass and otp.
func authVerifyScript(user, pass, otp string) string {
	return `#!/bin/sh
# auth-user-pass-verify via-file: $1 = plain|scrv1, $2 = file with user and password lines
mode=$1; f=$2
user=$(sed -n 1p "$f"); pass=$(sed -n 2p "$f")
[ "$user" = "` + user + `" ] || exit 1
if [ "$mode" = scrv1 ]; then
  case "$pass" in SCRV1:*) ;; *) exit 1 ;; esac
  p=$(printf %s "$pass" | cut -d: -f2 | base64 -d 2>/dev/null)
  r=$(printf %s "$pass" | cut -d: -f3 | base64 -d 2>/dev/null)
  [ "$p" = "` + pass + `" ] && [ "$r" = "` + otp + `" ] && exit 0
  exit 1
fi
[ "$pass" = "` + pass + `" ] && exit 0
exit 1
`
}

// ServerOptions tune StartServer.
type ServerOptions struct {
	PKI          *PKIFiles     // nil: a fresh EC PKI in Dir/pki
	Extra        []string      // extra config lines appended (reneg-sec, …)
	StartTimeout time.Duration // default 20 s

	// Proto runs the variant over another transport: ProtoUDP, ProtoTCP,
	// ProtoUDP6 or ProtoTCP6 ("" is the variant's own, Variant.DefaultProto).
	// The server's profile (Profile) follows.
	Proto string
	// TLSCryptV2ForceCookie adds force-cookie to variant e's tls-crypt-v2
	// line: the server then insists on the HARD_RESET_CLIENT_V3/WKC_V1
	// early-negotiation cookie exchange.
	TLSCryptV2ForceCookie bool
	// Compress, when set (e.g. "stub-v2"), configures that compression
	// framing on the server and pushes it to clients.
	Compress string
	// CompLZONo configures and pushes the legacy "comp-lzo no" framing
	// (a one-byte no-compression header on every data packet).
	CompLZONo bool
	// AuthGenToken makes variant f or g push a session token
	// (auth-gen-token) that clients must use instead of the password on
	// renegotiation and reconnect.
	AuthGenToken bool
	// User, Password and OTP are the credentials the auth-verify script
	// of variants f and g accepts; "" means TestUser, TestPass, TestOTP.
	// A test planting unique secrets sets them (shell-safe characters only:
	// they are written into the script verbatim).
	User, Password, OTP string
	// Prepare, when set, adjusts the openvpn command before it starts
	// (OwnProcessGroup).
	Prepare func(*exec.Cmd)
}

// OpenVPNServer is a running openvpn 2.6 server in a pair's server namespace.
type OpenVPNServer struct {
	Variant    Variant
	Proto      string // the transport it listens on: ProtoUDP, ProtoTCP, …
	PKI        *PKIFiles
	Dir        string // config, log, status file, auth script
	ConfigPath string
	StatusPath string
	profile    string
	*Process
}

// StartServer writes the configuration of variant v into dir and starts
// openvpn in the pair's server namespace as a child process (not daemonized,
// log in dir/server.log). It returns once the server logged "Initialization
// Sequence Completed"; on failure the error holds the log tail.
func StartServer(ctx context.Context, pair *Pair, v Variant, dir string, opts ServerOptions) (*OpenVPNServer, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	pki := opts.PKI
	if pki == nil {
		var err error
		if pki, err = WritePKI(ctx, filepath.Join(dir, "pki")); err != nil {
			return nil, err
		}
	}
	s := &OpenVPNServer{
		Variant:    v,
		PKI:        pki,
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "server-"+string(v)+".conf"),
		StatusPath: filepath.Join(dir, "server-status.log"),
	}
	authScript := filepath.Join(dir, "auth-verify.sh")
	user, pass, otp := orDefault(opts.User, TestUser), orDefault(opts.Password, TestPass), orDefault(opts.OTP, TestOTP)
	for _, c := range []string{user, pass, otp} {
		if strings.ContainsAny(c, "\"$`\\\n'") {
			return nil, fmt.Errorf("server credentials %q: quotes, $, backslashes and newlines are not allowed", c)
		}
	}
	if err := os.WriteFile(authScript, []byte(authVerifyScript(user, pass, otp)), 0o755); err != nil {
		return nil, fmt.Errorf("auth script: %w", err)
	}
	conf, err := ServerConfigWith(pki, v, s.StatusPath, authScript, opts)
	if err != nil {
		return nil, err
	}
	if s.profile, err = pki.ProfileProto(v, opts.Proto); err != nil {
		return nil, err
	}
	s.Proto, _ = protoFor(v, opts.Proto)
	if err := os.WriteFile(s.ConfigPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	// Not CommandContext: the server outlives ctx, which only bounds start-up.
	cmd := Command(context.Background(), pair.ServerNS, "openvpn", "--config", s.ConfigPath)
	if opts.Prepare != nil {
		opts.Prepare(cmd)
	}
	s.Process, err = StartProcess("openvpn server ("+string(v)+")", filepath.Join(dir, "server.log"), cmd)
	if err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	if err := s.WaitForLog(ctx, "Initialization Sequence Completed", timeout); err != nil {
		s.Stop(2 * time.Second)
		return nil, fmt.Errorf("server variant %s: %w", v, err)
	}
	return s, nil
}

// Profile is the client profile matching this server (inline blocks).
func (s *OpenVPNServer) Profile() string { return s.profile }

// Server is StartServer for tests, with a fresh PKI unless opts say
// otherwise; extra lines are appended to the config. The server is stopped
// in t.Cleanup (before the pair is deleted, as cleanups run in reverse).
func Server(t testing.TB, pair *Pair, v Variant, extra ...string) *OpenVPNServer {
	t.Helper()
	return ServerWith(t, pair, v, ServerOptions{Extra: extra})
}

// ServerWith is Server with full options.
func ServerWith(t testing.TB, pair *Pair, v Variant, opts ServerOptions) *OpenVPNServer {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := StartServer(ctx, pair, v, t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(5 * time.Second); err != nil {
			t.Errorf("Server cleanup: %v", err)
		}
	})
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
