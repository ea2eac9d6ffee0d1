package profile

import (
	"slices"
	"strings"
)

// Class says what this client does with an OpenVPN 2.x option found in a
// profile. It is what users read when their profile is accepted, so it
// must be true: an option is Applied only when the client acts on it and
// a test shows that (OptionInfo.Effect).
type Class int

const (
	// Applied options take effect: the client does what OpenVPN does
	// with them (or what the reason in the warning says).
	Applied Class = iota
	// Ignored options are accepted with a warning giving the reason
	// (silently when Quiet: the client already behaves that way).
	// Their handler still checks the syntax and fills the Profile, so
	// the engineer who makes one take effect flips it to Applied.
	Ignored
	// Refused options make the profile fail naming their line, unless
	// "setenv opt" or "ignore-unknown-option" lists them.
	Refused
)

func (c Class) String() string {
	switch c {
	case Applied:
		return "applied"
	case Ignored:
		return "ignored"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// OptionInfo is one entry of the option table.
type OptionInfo struct {
	Name  string
	Class Class
	// Why is the reason shown to the user for Ignored and Refused
	// options (and documentation for Quiet ones).
	Why string
	// Quiet: Ignored without a warning, because the client always does
	// what the option asks (Why says so) or it only tunes logging.
	Quiet bool
	// Inline: the option may be given as an inline <name> block.
	Inline bool
	// InConnection: the option may appear inside a <connection> block.
	InConnection bool
	// Effect names, for an Applied option, the tests that fail when the
	// option stops having its effect, as "<dir>.<TestName>" with dir
	// relative to the module root (e.g. "helper/openvpn/engine.TestX").
	// TestOptionTableEffects checks that each exists and mentions the
	// option, and that every Applied option has one.
	Effect []string

	handle handler // checks the arguments and fills the Profile
}

// Reasons shared by many options.
const (
	whyWindows    = "Windows-only option, no effect on Linux"
	whyScript     = "scripts are never run by this client"
	whyProcess    = "process management is done by the service, not the profile"
	whyLog        = "logging is handled by the service"
	whyManagement = "the management interface is replaced by the D-Bus API"
	whyServer     = "server-only option; this profile must be a client profile"
	whyPush       = "only meaningful when pushed by the server"
	whyCommand    = "a stand-alone command, not a profile option"
	whyTAP        = "TAP (layer 2) devices are not supported, only tun"
	whyTuning     = "socket/device tuning is chosen by the client"
	whyRemoved    = "removed from OpenVPN; no effect"
	// Parsed options that do not take effect yet.
	whyNotYet = "not applied by this client yet"
)

// Tests named by Effect (directory.TestName, see OptionInfo.Effect).
const (
	tEngine  = "helper/openvpn/engine."
	tControl = "helper/openvpn/control."
	tProfile = "helper/openvpn/profile."
	tPush    = "helper/openvpn/push."
	tCtlwrap = "helper/openvpn/ctlwrap."
	tBackend = "helper/backend."
)

// applied is an Applied entry.
func applied(name string, h handler, effect ...string) OptionInfo {
	return OptionInfo{Name: name, Class: Applied, handle: h, Effect: effect}
}

// notYet is an option the parser understands and fills into the Profile
// but that does not take effect yet: accepted with a warning.
func notYet(name, why string, h handler) OptionInfo {
	return OptionInfo{Name: name, Class: Ignored, Why: why, handle: h}
}

// ignored lists options accepted with a warning giving why.
func ignored(why string, names ...string) []OptionInfo {
	out := make([]OptionInfo, len(names))
	for i, n := range names {
		out[i] = OptionInfo{Name: n, Class: Ignored, Why: why}
	}
	return out
}

// quiet lists options ignored without a warning.
func quiet(why string, names ...string) []OptionInfo {
	out := ignored(why, names...)
	for i := range out {
		out[i].Quiet = true
	}
	return out
}

// refused lists options that make the profile fail, with why.
func refused(why string, names ...string) []OptionInfo {
	out := make([]OptionInfo, len(names))
	for i, n := range names {
		out[i] = OptionInfo{Name: n, Class: Refused, Why: why}
	}
	return out
}

// optionEntries is the option table. Adding an option is one entry here
// and, for an Applied one, the test named in its Effect.
func optionEntries() []OptionInfo {
	t := []OptionInfo{
		// Client mode and the profile's shape.
		applied("client", flag(func(ps *parser) { ps.client = true }), tProfile+"TestClientModeOptions"),
		applied("pull", flag(func(ps *parser) { ps.pull = true }), tProfile+"TestClientModeOptions"),
		applied("tls-client", flag(func(ps *parser) { ps.tlsClient = true }), tProfile+"TestClientModeOptions"),
		applied("mode", hMode, tProfile+"TestClientModeOptions"),
		applied("key-method", hKeyMethod, tProfile+"TestClientModeOptions"),
		applied("dev", hDev, tProfile+"TestClientModeOptions"),
		applied("dev-type", hDevType, tProfile+"TestClientModeOptions"),
		applied("setenv", (*parser).setenv, tProfile+"TestForwardCompatible", tProfile+"TestIgnoreUnknown", tEngine+"TestIntegrationPeerInfo"),
		applied("ignore-unknown-option", hIgnoreUnknown, tProfile+"TestIgnoreUnknown"),
		{Name: "setenv-safe", Class: Ignored, Why: "environment variables are only used by scripts", handle: hSetenvSafe, Quiet: true},

		// Servers and transport.
		applied("remote", (*parser).remote, tEngine+"TestIntegrationRemoteFailover", tEngine+"TestRemoteListConnectionBlocks"),
		applied("proto", hProto, tEngine+"TestIntegrationTransports", tProfile+"TestClientModeOptions"),
		applied("port", hPort, tProfile+"TestClientModeOptions"),
		applied("rport", hPort, tProfile+"TestClientModeOptions"),
		applied("connection", hConnection, tEngine+"TestRemoteListConnectionBlocks"),
		applied("remote-random", flag(func(ps *parser) { ps.p.RemoteRandom = true }), tEngine+"TestRemoteRandomShuffles"),
		applied("remote-random-hostname", flag(func(ps *parser) { ps.p.RemoteRandomHostname = true }), tEngine+"TestRemoteRandomHostname"),
		applied("resolv-retry", hResolvRetry, tEngine+"TestResolvRetry"),
		applied("connect-retry", hConnectRetry, tEngine+"TestRetryDelay"),
		applied("connect-retry-max", seconds(func(p *Profile, n int) { p.ConnectRetryMax = n }), tEngine+"TestRunRetryPolicy"),
		applied("server-poll-timeout", seconds(func(p *Profile, n int) { p.ServerPollTimeout = n }), tEngine+"TestIntegrationDeadServerFails"),
		applied("connect-timeout", seconds(func(p *Profile, n int) { p.ServerPollTimeout = n }), tEngine+"TestProfileOptionsReachEngine"),
		applied("nobind", flag(func(ps *parser) { ps.p.Nobind = true }), tEngine+"TestProfileOptionsReachEngine"),
		applied("lport", hLport, tEngine+"TestProfileOptionsReachEngine"),
		applied("http-proxy", hHTTPProxy, tEngine+"TestIntegrationHTTPProxy"),
		applied("http-proxy-option", hHTTPProxyOption, tEngine+"TestProxyOptions"),
		{Name: "http-proxy-user-pass", Class: Applied, handle: hHTTPProxyUserPass, Inline: true, Effect: []string{tEngine + "TestIntegrationHTTPProxy"}},
		applied("float", flag(func(ps *parser) { ps.p.Float = true }), tEngine+"TestIntegrationFloat"),

		// Certificates, keys and TLS.
		{Name: "ca", Class: Applied, Inline: true, handle: pemMaterial(func(p *Profile, c string) { p.CA = c }, "CERTIFICATE"), Effect: []string{tEngine + "TestTLSVerification"}},
		{Name: "cert", Class: Applied, Inline: true, handle: pemMaterial(func(p *Profile, c string) { p.Cert = c }, "CERTIFICATE"), Effect: []string{tEngine + "TestIntegrationCertProfiles"}},
		{Name: "key", Class: Applied, Inline: true, handle: pemMaterial(func(p *Profile, c string) { p.Key = c }, "*PRIVATE KEY"), Effect: []string{tEngine + "TestIntegrationCertProfiles"}},
		{Name: "extra-certs", Class: Applied, Inline: true, handle: pemMaterial(func(p *Profile, c string) { p.ExtraCerts += c }, "CERTIFICATE"), Effect: []string{tEngine + "TestProfileOptionsReachEngine"}},
		{Name: "pkcs12", Class: Applied, Inline: true, handle: hPKCS12, Effect: []string{tEngine + "TestPKCS12"}},
		{Name: "crl-verify", Class: Applied, Inline: true, handle: hCRLVerify, Effect: []string{tEngine + "TestCRLVerify"}},
		{Name: "peer-fingerprint", Class: Applied, Inline: true, handle: hPeerFingerprint, Effect: []string{tEngine + "TestPeerFingerprint"}},
		applied("remote-cert-tls", hRemoteCertTLS, tEngine+"TestTLSVerification"),
		applied("remote-cert-ku", hRemoteCertKU, tEngine+"TestTLSVerification"),
		applied("remote-cert-eku", word(func(p *Profile, v string) { p.RemoteCertEKU = v }), tEngine+"TestTLSVerification"),
		applied("verify-x509-name", hVerifyX509Name, tEngine+"TestIntegrationCertProfiles"),
		applied("tls-version-min", hTLSVersionMin, tEngine+"TestTLSVersionsAndSuites"),
		applied("tls-version-max", choice(func(p *Profile, v string) { p.TLSVersionMax = v }, tlsVersions...), tEngine+"TestTLSVersionsAndSuites"),
		applied("tls-cipher", word(func(p *Profile, v string) { p.TLSCipher = v }), tEngine+"TestTLSVersionsAndSuites"),
		applied("tls-ciphersuites", word(func(p *Profile, v string) { p.TLSCipherSuites = v }), tEngine+"TestTLSVersionsAndSuites"),
		applied("tls-groups", word(func(p *Profile, v string) { p.TLSGroups = v }), tEngine+"TestTLSVersionsAndSuites"),
		applied("tls-cert-profile", choice(func(p *Profile, v string) { p.TLSCertProfile = v }, "insecure", "legacy", "preferred", "suiteb"), tEngine+"TestSHA1Chain"),
		applied("hand-window", seconds(func(p *Profile, n int) { p.HandWindow = n }), tEngine+"TestIntegrationCertProfiles", tEngine+"TestSessionConfigFromProfile", tControl+"TestTimerHandWindow"),
		applied("tls-timeout", seconds(func(p *Profile, n int) { p.TLSTimeout = n }), tEngine+"TestProfileOptionsReachEngine"),
		{Name: "tls-auth", Class: Applied, Inline: true, handle: hTLSKey, Effect: []string{tCtlwrap + "TestInteropTLSAuth"}},
		{Name: "tls-crypt", Class: Applied, Inline: true, handle: hTLSKey, Effect: []string{tCtlwrap + "TestInteropTLSCrypt"}},
		{Name: "tls-crypt-v2", Class: Applied, Inline: true, handle: hTLSKey, Effect: []string{tCtlwrap + "TestInteropTLSCryptV2"}},
		applied("key-direction", hKeyDirection, tEngine+"TestProfileOptionsReachEngine"),
		applied("max-packet-size", number(154, 2048, func(p *Profile, n int) { p.MaxPacketSize = n }), tProfile+"TestMaxPacketSize"),

		// Data channel.
		applied("cipher", algorithm(func(p *Profile, v string) { p.Cipher = v }), tEngine+"TestIntegrationLegacyCBC"),
		applied("data-ciphers", hDataCiphers, tEngine+"TestOfferedCiphers"),
		applied("ncp-ciphers", hDataCiphers, tEngine+"TestProfileOptionsReachEngine"),
		applied("data-ciphers-fallback", algorithm(func(p *Profile, v string) { p.DataCiphersFallback = v }), tEngine+"TestProfileOptionsReachEngine"),
		applied("auth", algorithm(func(p *Profile, v string) { p.Auth = v }), tEngine+"TestProfileOptionsReachEngine"),
		applied("comp-lzo", hCompLZO, tEngine+"TestIntegrationCompressionFraming"),
		applied("compress", hCompress, tEngine+"TestProfileOptionsReachEngine"),
		applied("allow-compression", hAllowCompression, tEngine+"TestIntegrationDecompression"),
		applied("tun-mtu", number(576, 65535, func(p *Profile, n int) { p.TunMTU = n }), tEngine+"TestMSSLimit"),
		applied("tun-mtu-max", number(576, 65535, func(p *Profile, n int) { p.TunMTUMax = n }), tEngine+"TestIntegrationPeerInfo", tEngine+"TestPushedTunMTUOverMax"),
		applied("mssfix", hMssfix, tEngine+"TestIntegrationMSSClamp"),
		applied("replay-window", (*parser).limitOption, tEngine+"TestReplayWindowOption", tProfile+"TestLimitOptions"),

		// Authentication.
		{Name: "auth-user-pass", Class: Applied, Inline: true, handle: hAuthUserPass, Effect: []string{tBackend + "TestInputQueue"}},
		applied("auth-nocache", flag(func(ps *parser) { ps.p.AuthNoCache = true }), tEngine+"TestIntegrationOneTimeCredentials", tBackend+"TestCredentialsNeededAsksAgain"),
		notYet("auth-retry", whyNotYet, choice(func(p *Profile, v string) { p.AuthRetry = v }, "none", "nointeract", "interact")),
		applied("static-challenge", hStaticChallenge, tEngine+"TestProfileOptionsReachEngine", tEngine+"TestIntegrationOneTimeCredentials"),

		// Timers and key lifetime.
		applied("ping", seconds(func(p *Profile, n int) { p.Ping = n }), tEngine+"TestIntegrationConnect"),
		applied("ping-restart", seconds(func(p *Profile, n int) { p.PingRestart = n }), tEngine+"TestConnectLoopAfterConnection"),
		applied("keepalive", hKeepalive, tEngine+"TestIntegrationReconnect"),
		applied("ping-exit", seconds(func(p *Profile, n int) { p.PingExit = n }), tEngine+"TestSessionConfigFromProfile", tControl+"TestTimerPingExit"),
		applied("reneg-sec", hRenegSec, tEngine+"TestIntegrationRenegotiationNoLoss", tEngine+"TestSessionConfigFromProfile", tControl+"TestKeyLimitRenegSecJitter", tControl+"TestKeyLimitRenegSecOff"),
		applied("reneg-bytes", count64(func(p *Profile, n int64) { p.RenegBytes = n }), tEngine+"TestSessionConfigFromProfile", tControl+"TestKeyLimitRenegUsage"),
		applied("reneg-pkts", count64(func(p *Profile, n int64) { p.RenegPkts = n }), tEngine+"TestSessionConfigFromProfile", tControl+"TestKeyLimitRenegUsage"),
		applied("tran-window", seconds(func(p *Profile, n int) { p.TranWindow = n }), tEngine+"TestSessionConfigFromProfile", tControl+"TestKeyLimitTranWindow"),
		applied("inactive", (*parser).limitOption, tEngine+"TestTimerInactive", tEngine+"TestTimerInactiveByteThreshold"),
		applied("session-timeout", (*parser).limitOption, tEngine+"TestTimerSessionTimeout"),
		applied("explicit-exit-notify", hExplicitExitNotify, tEngine+"TestExplicitExitNotifyPaced", tEngine+"TestProfileOptionsReachEngine"),

		// Peer info.
		applied("push-peer-info", flag(func(ps *parser) { ps.p.PushPeerInfo = true }), tEngine+"TestIntegrationPeerInfo", tEngine+"TestPeerInfoDetail"),

		// Routing and DNS: in push syntax, applied with the pushed ones.
		applied("route-nopull", flag(func(ps *parser) { ps.p.RouteNoPull = true }), tPush+"TestFilters"),
		applied("pull-filter", hPullFilter, tPush+"TestFilters", tProfile+"TestPushAssembler"),
		applied("route", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("route-ipv6", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("redirect-gateway", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("redirect-private", (*parser).netOption, tPush+"TestRoutingFlagsInNetConfig"),
		applied("dhcp-option", (*parser).netOption, tPush+"TestDNSOption", "e2e.TestDNSPushedResolvConf"),
		applied("dns", (*parser).netOption, tPush+"TestDNSOption", "e2e.TestDNSPushedResolved"),
		applied("route-metric", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("route-gateway", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("route-ipv6-gateway", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("topology", (*parser).netOption, tPush+"TestProfileRoutingOptions"),
		applied("block-ipv6", (*parser).netOption, "e2e.TestRoutingRedirectGateway"),

		// ovpn3go's own: the data path's offloads, each on unless switched
		// off (other clients refuse the option unless "setenv opt" marks it).
		applied("ovpn3go-offload", hOffload, tEngine+"TestOffloadOptionEffects"),

		// Logging.
		applied("verb", number(0, 11, func(p *Profile, n int) { p.Verb = n }), tBackend+"TestLogLevelFromProfile"),
	}
	t = append(t, quiet(whyLog, "mute", "mute-replay-warnings", "suppress-timestamps")...)
	t = append(t, quiet("the client keeps keys and certificates in memory across reconnects", "persist-key")...)
	t = append(t, quiet("IPv6 is always enabled on the tun device", "tun-ipv6")...)
	t = append(t, quiet("socket I/O is chosen by the client", "fast-io")...)
	t = append(t, quiet("the ping-restart timer always runs", "ping-timer-rem")...)
	t = append(t, ignored("the tun device is set up again on every reconnect", "persist-tun")...)
	t = append(t, ignored("data channel offload is chosen by the client", "disable-dco")...)
	t = append(t, ignored(whyNotYet, "preresolve", "allow-pull-fqdn")...)

	t = append(t, ignored(whyWindows,
		"block-outside-dns", "register-dns", "ip-win32", "route-method", "dhcp-release",
		"dhcp-renew", "dhcp-pre-release", "tap-sleep", "win-sys", "allow-nonadmin", "pause-exit",
		"service", "show-net-up", "msg-channel", "ip-remote-hint", "dhcp-internal", "rdns-internal",
		"windows-driver",
	)...)
	t = append(t, ignored(whyScript,
		"up", "down", "down-pre", "route-up", "route-pre-down", "ipchange", "script-security",
		"up-delay", "up-restart", "tls-verify", "tls-export-cert", "dns-updown", "plugin",
		"x509-track", "keying-material-exporter",
	)...)
	t = append(t, ignored(whyProcess,
		"daemon", "user", "group", "chroot", "cd", "writepid", "nice", "mlock", "setcon",
		"remap-usr1", "tmp-dir", "iproute", "persist-local-ip", "persist-remote-ip",
		"single-session", "tls-exit", "compat-mode", "engine", "providers", "askpass",
		"route-delay", "route-noexec", "ifconfig-noexec", "ifconfig-nowarn", "route-table",
		"allow-recursive-routing", "show-gateway",
	)...)
	t = append(t, ignored(whyLog,
		"log", "log-append", "syslog", "status", "status-version", "machine-readable-output",
		"errors-to-stderr", "echo",
	)...)
	t = append(t, ignored(whyManagement,
		"management", "management-client", "management-client-auth", "management-client-group",
		"management-client-user", "management-forget-disconnect", "management-hold",
		"management-log-cache", "management-query-passwords", "management-query-proxy",
		"management-query-remote", "management-signal", "management-up-down",
	)...)
	t = append(t, ignored(whyTuning,
		"rcvbuf", "sndbuf", "txqueuelen", "socket-flags", "tcp-nodelay", "passtos", "mtu-disc",
		"mark", "bind-dev", "link-mtu", "udp-mtu",
		"replay-persist", "shaper", "comp-noadapt", "ecdh-curve", "proto-force", "dev-node",
		"disable-occ",
		"gremlin",
	)...)
	t = append(t, ignored("the client binds to any local address", "local", "bind")...)
	t = append(t, ignored(whyRemoved,
		"ncp-disable", "prng", "max-routes", "opt-verify", "http-proxy-retry", "http-proxy-timeout",
		"socks-proxy-retry", "use-prediction-resistance", "mtu-dynamic", "no-name-remapping",
		"compat-names",
	)...)
	t = append(t, ignored("superseded by remote-cert-tls/verify-x509-name; not checked", "ns-cert-type")...)
	// NordVPN- and Surfshark-style profiles carry "tun-mtu-extra 32": it
	// only sizes OpenVPN's internal buffers, nothing on the wire.
	t = append(t, ignored("internal buffer sizing; no effect on this client", "tun-mtu-extra")...)
	t = append(t, ignored(whyPush,
		"auth-token", "auth-token-user", "peer-id", "push-continuation", "protocol-flags",
		"key-derivation", "ifconfig", "ifconfig-ipv6",
	)...)
	t = append(t, refused(whyServer,
		"server", "server-bridge", "server-ipv6", "tls-server", "dh", "push", "push-reset",
		"push-remove", "client-config-dir", "ccd-exclusive", "client-to-client", "duplicate-cn",
		"ifconfig-pool", "ifconfig-ipv6-pool", "ifconfig-pool-persist", "ifconfig-push",
		"ifconfig-ipv6-push", "ifconfig-push-constraint", "iroute", "iroute-ipv6", "max-clients",
		"max-routes-per-client", "connect-freq", "port-share", "stale-routes-check",
		"username-as-common-name", "verify-client-cert", "auth-user-pass-verify",
		"auth-user-pass-optional", "auth-gen-token", "auth-gen-token-secret", "client-connect",
		"client-disconnect", "client-crresponse", "learn-address", "override-username",
		"multihome", "tls-crypt-v2-verify", "tls-crypt-v2-max-age", "vlan-tagging", "vlan-accept",
		"vlan-pvid", "x509-username-field", "hash-size", "bcast-buffers", "tcp-queue-limit",
		"disable", "client-cert-not-required", "ifconfig-pool-linear", "management-client-pf",
		"force-tls-key-material-export", "connect-freq-initial",
	)...)
	t = append(t, refused("internal fragmentation is not supported; use mssfix or fix the path MTU", "fragment")...)
	t = append(t, refused("SOCKS proxies are not supported (http-proxy is)", "socks-proxy")...)
	t = append(t, refused("static-key mode is insecure and not supported; use TLS mode", "secret",
		"allow-deprecated-insecure-static-crypto")...)
	t = append(t, refused("PKCS#11 tokens are not supported yet",
		"pkcs11-providers", "pkcs11-id", "pkcs11-id-management", "pkcs11-pin-cache",
		"pkcs11-private-mode", "pkcs11-protected-authentication", "pkcs11-cert-private")...)
	t = append(t, refused("the certificate would come from the Windows certificate store", "cryptoapicert")...)
	t = append(t, refused("external keys via the management interface are not supported",
		"management-external-key", "management-external-cert")...)
	t = append(t, refused(whyTAP, "lladdr", "server-bridge-dhcp")...)
	t = append(t, refused("CA directories cannot be part of an imported profile; inline the CA as <ca>", "capath")...)
	t = append(t, refused("verification by CA certificate hash is not supported; use <ca> or peer-fingerprint", "verify-hash")...)
	t = append(t, refused("an imported profile must be self-contained; paste the included file into the profile", "config")...)
	t = append(t, refused("weakens the VPN's security; removed from OpenVPN", "no-iv", "no-replay")...)
	t = append(t, refused("MTU testing is not supported", "mtu-test")...)
	t = append(t, refused("the NetworkManager-style client-side NAT is not supported", "client-nat")...)
	t = append(t, refused("HTTP proxy override by the management interface is not supported", "http-proxy-override")...)
	t = append(t, refused(whyCommand,
		"help", "version", "genkey", "test-crypto", "mktun", "rmtun", "show-ciphers",
		"show-digests", "show-tls", "show-engines", "show-groups", "show-curves",
		"show-pkcs11-ids", "show-adapters", "show-net", "show-valid-subnets", "parameter")...)
	return t
}

// inlineOnlyRefused are refused options that OpenVPN lets be inline
// blocks: refused by their reason, not as "cannot be inline".
var inlineRefused = []string{"dh", "secret", "tls-crypt-v2-verify", "auth-gen-token-secret"}

// connectionOptions may appear inside <connection> (man page "CONNECTION
// PROFILES").
var connectionOptions = []string{"bind", "connect-retry", "connect-retry-max", "connect-timeout",
	"explicit-exit-notify", "float", "fragment", "http-proxy", "http-proxy-option",
	"key-direction", "link-mtu", "local", "lport", "mssfix", "mtu-disc", "nobind", "port",
	"proto", "remote", "rport", "socks-proxy", "tls-auth", "tls-crypt", "tls-crypt-v2",
	"tun-mtu", "tun-mtu-extra", "server-poll-timeout"}

// optionTable is the option table sorted by name. It lives in every
// process (the daemon and each backend) from package initialisation on,
// so it is a slice searched by name rather than a map: about half the
// memory for the same entries.
var optionTable = buildTable()

func buildTable() []OptionInfo {
	t := optionEntries()
	slices.SortFunc(t, func(a, b OptionInfo) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(t); i++ {
		if t[i].Name == t[i-1].Name {
			panic("profile: option " + t[i].Name + " is in the table twice")
		}
	}
	for _, n := range inlineRefused {
		t[tableIndex(t, n)].Inline = true
	}
	for _, n := range connectionOptions {
		t[tableIndex(t, n)].InConnection = true
	}
	// The entries' own slice grew by appending: keep an exact copy.
	return slices.Clone(t)
}

// findOption returns the index of the option named name in the sorted
// table t.
func findOption(t []OptionInfo, name string) (int, bool) {
	return slices.BinarySearchFunc(t, name, func(e OptionInfo, n string) int { return strings.Compare(e.Name, n) })
}

// tableIndex is findOption for a name the table must have.
func tableIndex(t []OptionInfo, name string) int {
	i, ok := findOption(t, name)
	if !ok {
		panic("profile: option " + name + " is not in the table")
	}
	return i
}

// Lookup returns the classification of an option name (without "--").
func Lookup(name string) (OptionInfo, bool) {
	i, ok := findOption(optionTable, strings.TrimPrefix(name, "--"))
	if !ok {
		return OptionInfo{}, false
	}
	return optionTable[i], true
}

// AllOptions lists the classification table sorted by name.
func AllOptions() []OptionInfo {
	return slices.Clone(optionTable)
}
