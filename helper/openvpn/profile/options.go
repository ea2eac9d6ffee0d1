package profile

import (
	"slices"
	"strings"
)

// Class says how this client treats an OpenVPN 2.x option in a profile.
type Class int

const (
	// Supported options are understood: they fill a typed field of
	// Profile or are carried for the engine.
	Supported Class = iota
	// Accepted options are fine as they are: they describe what this
	// client always does, or only affect logging. No warning.
	Accepted
	// Ignored options are accepted with a warning: they have no meaning
	// here (Windows-only, scripts, process management, …).
	Ignored
	// PushOnly options are meaningful only when the server pushes them;
	// in a profile they are ignored with a warning.
	PushOnly
	// ServerOnly options belong in a server configuration; refused.
	ServerOnly
	// NotImplemented options would change behaviour in a way this client
	// cannot honour; refused unless named by "setenv opt" or
	// "ignore-unknown-option".
	NotImplemented
)

func (c Class) String() string {
	switch c {
	case Supported:
		return "supported"
	case Accepted:
		return "accepted"
	case Ignored:
		return "ignored"
	case PushOnly:
		return "push-only"
	case ServerOnly:
		return "server-only"
	case NotImplemented:
		return "not implemented"
	}
	return "unknown"
}

// OptionInfo describes one option name.
type OptionInfo struct {
	Name  string
	Class Class
	// Why explains an Ignored, PushOnly, ServerOnly or NotImplemented
	// class to the user.
	Why string
	// Inline: the option may be given as an inline <name> block.
	Inline bool
	// InConnection: the option may appear inside a <connection> block.
	InConnection bool
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
)

var optionTable = buildTable()

func buildTable() map[string]OptionInfo {
	t := make(map[string]OptionInfo)
	add := func(class Class, why string, names ...string) {
		for _, n := range names {
			t[n] = OptionInfo{Name: n, Class: class, Why: why}
		}
	}

	// Understood options.
	add(Supported, "",
		"client", "pull", "tls-client", "dev", "dev-type", "proto", "port", "rport", "remote",
		"remote-random", "remote-random-hostname", "connection", "nobind",
		"ca", "cert", "key", "extra-certs", "pkcs12", "crl-verify", "peer-fingerprint",
		"tls-auth", "tls-crypt", "tls-crypt-v2", "key-direction",
		"cipher", "data-ciphers", "ncp-ciphers", "data-ciphers-fallback", "auth",
		"auth-user-pass", "auth-nocache", "auth-retry", "static-challenge",
		"remote-cert-tls", "remote-cert-ku", "remote-cert-eku", "verify-x509-name",
		"tls-version-min", "tls-version-max", "tls-cipher", "tls-ciphersuites", "tls-groups",
		"tls-cert-profile", "verb", "route-nopull", "pull-filter",
		"comp-lzo", "compress", "allow-compression", "explicit-exit-notify",
		"tun-mtu", "tun-mtu-max", "mssfix", "ping", "ping-restart", "ping-exit", "keepalive",
		"connect-retry", "connect-retry-max", "server-poll-timeout", "connect-timeout",
		"reneg-sec", "reneg-bytes", "reneg-pkts", "hand-window", "tls-timeout", "tran-window",
		"http-proxy", "http-proxy-option", "http-proxy-user-pass",
		"setenv", "setenv-safe", "ignore-unknown-option", "push-peer-info",
		"route", "route-ipv6", "redirect-gateway", "redirect-private", "dhcp-option", "dns",
		"block-ipv6", "route-metric", "route-gateway", "route-ipv6-gateway", "topology",
		"key-method", "mode", "max-packet-size",
	)

	// What this client always does, or logging verbosity.
	add(Accepted, "",
		"persist-key", "persist-tun", "resolv-retry", "float", "mute", "mute-replay-warnings",
		"suppress-timestamps", "tun-ipv6", "disable-dco", "fast-io", "preresolve",
		"allow-pull-fqdn", "ping-timer-rem",
	)

	add(Ignored, whyWindows,
		"block-outside-dns", "register-dns", "ip-win32", "route-method", "dhcp-release",
		"dhcp-renew", "dhcp-pre-release", "tap-sleep", "win-sys", "allow-nonadmin", "pause-exit",
		"service", "show-net-up", "msg-channel", "ip-remote-hint", "dhcp-internal", "rdns-internal",
		"windows-driver",
	)
	add(Ignored, whyScript,
		"up", "down", "down-pre", "route-up", "route-pre-down", "ipchange", "script-security",
		"up-delay", "up-restart", "tls-verify", "tls-export-cert", "dns-updown", "plugin",
		"x509-track", "keying-material-exporter",
	)
	add(Ignored, whyProcess,
		"daemon", "user", "group", "chroot", "cd", "writepid", "nice", "mlock", "setcon",
		"remap-usr1", "tmp-dir", "iproute", "persist-local-ip", "persist-remote-ip",
		"single-session", "tls-exit", "compat-mode", "engine", "providers", "askpass",
		"route-delay", "route-noexec", "ifconfig-noexec", "ifconfig-nowarn", "route-table",
		"allow-recursive-routing", "show-gateway",
	)
	add(Ignored, whyLog,
		"log", "log-append", "syslog", "status", "status-version", "machine-readable-output",
		"errors-to-stderr", "echo",
	)
	add(Ignored, whyManagement,
		"management", "management-client", "management-client-auth", "management-client-group",
		"management-client-user", "management-forget-disconnect", "management-hold",
		"management-log-cache", "management-query-passwords", "management-query-proxy",
		"management-query-remote", "management-signal", "management-up-down",
	)
	add(Ignored, whyTuning,
		"rcvbuf", "sndbuf", "txqueuelen", "socket-flags", "tcp-nodelay", "passtos", "mtu-disc",
		"mark", "bind-dev", "link-mtu", "udp-mtu", "replay-window",
		"replay-persist", "shaper", "comp-noadapt", "ecdh-curve", "proto-force", "dev-node",
		"disable-occ",
		"gremlin",
	)
	add(Ignored, "the client always binds an ephemeral local port", "local", "lport", "bind")
	add(Ignored, "inactivity and session timeouts are not enforced by this client",
		"inactive", "session-timeout")
	add(Ignored, "removed from OpenVPN; no effect",
		"ncp-disable", "prng", "max-routes", "opt-verify", "http-proxy-retry", "http-proxy-timeout",
		"socks-proxy-retry", "use-prediction-resistance", "mtu-dynamic", "no-name-remapping",
		"compat-names",
	)
	add(Ignored, "superseded by remote-cert-tls/verify-x509-name; not checked",
		"ns-cert-type",
	)
	add(PushOnly, whyPush,
		"auth-token", "auth-token-user", "peer-id", "push-continuation", "protocol-flags",
		"key-derivation", "ifconfig", "ifconfig-ipv6",
	)
	add(ServerOnly, whyServer,
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
	)
	add(NotImplemented, "internal fragmentation is not supported; use mssfix or fix the path MTU",
		"fragment")
	add(NotImplemented, "SOCKS proxies are not supported (http-proxy is)", "socks-proxy")
	add(NotImplemented, "static-key mode is insecure and not supported; use TLS mode", "secret",
		"allow-deprecated-insecure-static-crypto")
	add(NotImplemented, "PKCS#11 tokens are not supported yet",
		"pkcs11-providers", "pkcs11-id", "pkcs11-id-management", "pkcs11-pin-cache",
		"pkcs11-private-mode", "pkcs11-protected-authentication", "pkcs11-cert-private")
	add(NotImplemented, "the certificate would come from the Windows certificate store", "cryptoapicert")
	add(NotImplemented, "external keys via the management interface are not supported",
		"management-external-key", "management-external-cert")
	add(NotImplemented, whyTAP, "lladdr", "server-bridge-dhcp")
	// NordVPN- and Surfshark-style profiles carry "tun-mtu-extra 32": it
	// only sizes OpenVPN's internal buffers, nothing on the wire.
	add(Ignored, "internal buffer sizing; no effect on this client", "tun-mtu-extra")
	add(NotImplemented, "CA directories cannot be part of an imported profile; inline the CA as <ca>", "capath")
	add(NotImplemented, "verification by CA certificate hash is not supported; use <ca> or peer-fingerprint", "verify-hash")
	add(NotImplemented, "an imported profile must be self-contained; paste the included file into the profile", "config")
	add(NotImplemented, "weakens the VPN's security; removed from OpenVPN", "no-iv", "no-replay")
	add(NotImplemented, "MTU testing is not supported", "mtu-test")
	add(NotImplemented, "the NetworkManager-style client-side NAT is not supported", "client-nat")
	add(NotImplemented, "HTTP proxy override by the management interface is not supported", "http-proxy-override")
	add(NotImplemented, whyCommand,
		"help", "version", "genkey", "test-crypto", "mktun", "rmtun", "show-ciphers",
		"show-digests", "show-tls", "show-engines", "show-groups", "show-curves",
		"show-pkcs11-ids", "show-adapters", "show-net", "show-valid-subnets", "parameter")

	// Which options take an inline block.
	for _, n := range []string{"ca", "cert", "key", "extra-certs", "tls-auth", "tls-crypt",
		"tls-crypt-v2", "auth-user-pass", "http-proxy-user-pass", "pkcs12", "crl-verify",
		"peer-fingerprint", "connection", "dh", "secret", "tls-crypt-v2-verify", "auth-gen-token-secret"} {
		i := t[n]
		i.Inline = true
		t[n] = i
	}
	// Options allowed inside <connection> (man page "CONNECTION PROFILES").
	for _, n := range []string{"bind", "connect-retry", "connect-retry-max", "connect-timeout",
		"explicit-exit-notify", "float", "fragment", "http-proxy", "http-proxy-option",
		"key-direction", "link-mtu", "local", "lport", "mssfix", "mtu-disc", "nobind", "port",
		"proto", "remote", "rport", "socks-proxy", "tls-auth", "tls-crypt", "tls-crypt-v2",
		"tun-mtu", "tun-mtu-extra", "server-poll-timeout"} {
		i := t[n]
		i.InConnection = true
		t[n] = i
	}
	return t
}

// Lookup returns the classification of an option name (without "--").
func Lookup(name string) (OptionInfo, bool) {
	i, ok := optionTable[strings.TrimPrefix(name, "--")]
	return i, ok
}

// AllOptions lists the classification table sorted by name.
func AllOptions() []OptionInfo {
	out := make([]OptionInfo, 0, len(optionTable))
	for _, i := range optionTable {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b OptionInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
