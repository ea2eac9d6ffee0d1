package profile

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) *Profile {
	t.Helper()
	return mustParse(t, readFile(t, filepath.Join("testdata/good", name+".ovpn")))
}

func warningOptions(p *Profile) []string {
	var out []string
	for _, w := range p.Warnings {
		out = append(out, w.Option)
	}
	return out
}

func TestAccessServerProfile(t *testing.T) {
	p := parseFile(t, "as-userlocked")
	wantMeta := map[string]string{
		"PROFILE":                   "alice@vpn.example.com",
		"CLI_PREF_ALLOW_WEB_IMPORT": "True",
		"CLI_PREF_BASIC_CLIENT":     "False",
		"CLI_PREF_ENABLE_CONNECT":   "False",
		"CLI_PREF_ENABLE_XD_PROXY":  "True",
		"WSHOST":                    "vpn.example.com:443",
		"WEB_CA_BUNDLE":             "-----BEGIN CERTIFICATE-----\nMIIBeDCCAR6gAwIBAgIUaUK2sibrZgI\n-----END CERTIFICATE-----",
		"IS_OPENVPN_WEB_CA":         "1",
		"ORGANIZATION":              "OpenVPN, Inc.",
		"USERNAME":                  "alice",
		"FRIENDLY_NAME":             "Example Corp VPN",
	}
	if !reflect.DeepEqual(p.ASMeta, wantMeta) {
		t.Errorf("ASMeta\n got %q\nwant %q", p.ASMeta, wantMeta)
	}
	if !reflect.DeepEqual(p.Setenv, map[string]string{"FORWARD_COMPATIBLE": "1", "PUSH_PEER_INFO": "", "UV_CLIENT_ID": "0123456789abcdef"}) {
		t.Errorf("setenv %q", p.Setenv)
	}
	if len(p.Remotes) != 8 || p.Remotes[2] != (Remote{"vpn.example.com", "443", "tcp"}) {
		t.Errorf("remotes %+v", p.Remotes)
	}
	if p.TLSCryptV2 == "" || p.Cert == "" || p.Key == "" || !p.AuthUserPass || p.StaticChallenge == nil ||
		p.ServerPollTimeout != 4 || p.RenegSec != 604800 || p.TunMTU != 1420 || p.TLSVersionMin != "1.2" ||
		!p.PushPeerInfo || p.TLSCipher != "DEFAULT:@SECLEVEL=0" || p.DevType != "tun" {
		t.Errorf("fields %+v", p)
	}
	if got := warningOptions(p); !reflect.DeepEqual(got, []string{"block-outside-dns"}) {
		t.Errorf("warnings %v", p.Warnings)
	}

	p = parseFile(t, "as-autologin-tlsauth")
	if p.KeyDirection != 1 || p.TLSAuth == "" || p.Cipher != "AES-256-CBC" || p.Auth != "SHA256" || p.CompLZO != "no" ||
		p.AuthUserPass || p.ASMeta["AUTOLOGIN"] != "1" || p.TLSVersionMin != "1.0" || !p.TLSVersionMinOrHighest {
		t.Errorf("autologin fields %+v", p)
	}
	if got := warningOptions(p); !reflect.DeepEqual(got, []string{"ns-cert-type", "sndbuf", "rcvbuf"}) {
		t.Errorf("warnings %v", p.Warnings)
	}
}

func TestProviderProfile(t *testing.T) {
	p := parseFile(t, "provider-connections")
	wantRemotes := []Remote{
		{"nl1.vpn.example", "1194", "udp"},
		{"nl2.vpn.example", "1194", "udp"},
		{"nl3.vpn.example", "443", "tcp-client"},
		{"nl4.vpn.example", "8443", "tcp"},
	}
	if !reflect.DeepEqual(p.Remotes, wantRemotes) {
		t.Errorf("remotes %+v", p.Remotes)
	}
	if len(p.Connections) != 4 || p.Connections[3].Remote != wantRemotes[3] || len(p.Connections[2].Options) != 2 ||
		p.Connections[0].Line != 21 {
		t.Errorf("connections %+v", p.Connections)
	}
	if !p.RemoteRandom || p.VerifyX509Name != "nl.vpn.example" || p.VerifyX509Type != "name-prefix" ||
		!reflect.DeepEqual(p.DataCiphers, []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"}) ||
		p.DataCiphersFallback != "AES-256-CBC" || p.Auth != "SHA512" || p.Ping != 15 || p.PingRestart != 60 ||
		!p.AuthNoCache || p.AuthRetry != "nointeract" || p.Mssfix != 1450 || p.ExplicitExitNotify != 2 ||
		p.ConnectRetry != 2 || p.ConnectRetryMaxDelay != 30 {
		t.Errorf("fields %+v", p)
	}
	wantFilters := []PullFilter{{"ignore", "route-ipv6"}, {"ignore", "ifconfig-ipv6"}, {"reject", "redirect-gateway ipv6"}}
	if !reflect.DeepEqual(p.PullFilters, wantFilters) {
		t.Errorf("pull filters %+v", p.PullFilters)
	}
	wantWarn := []string{"persist-tun", "script-security", "up", "down", "block-outside-dns", "register-dns", "ip-win32", "route-method", "route-delay", "auth-retry"}
	if got := warningOptions(p); !reflect.DeepEqual(got, wantWarn) {
		t.Errorf("warnings %v", p.Warnings)
	}
	for _, w := range p.Warnings {
		if w.Line == 0 || !strings.Contains(w.String(), "line ") {
			t.Errorf("warning without line: %v", w)
		}
	}
}

func TestInlineCredentialsProfile(t *testing.T) {
	p := parseFile(t, "inline-creds-proxy")
	if p.AuthUsername != "alice" || p.AuthPassword != "s3cret pass" || !p.AuthUserPass {
		t.Errorf("credentials %q %q", p.AuthUsername, p.AuthPassword)
	}
	if p.Dev != "tun0" || p.Proto != "tcp4" || p.Port != "443" || !p.RouteNoPull || p.CompLZO != "no" ||
		p.Cipher != "AES-256-GCM" || !reflect.DeepEqual(p.DataCiphers, []string{"AES-256-GCM", "AES-128-GCM"}) ||
		p.KeyDirection != 1 || p.TLSAuth == "" || p.Verb != 4 || p.TLSCertProfile != "preferred" ||
		p.TLSGroups != "X25519:prime256v1" || p.RemoteCertEKU != "TLS Web Server Authentication" ||
		!reflect.DeepEqual(p.RemoteCertKU, []string{"a0", "88"}) || len(p.PeerFingerprints) != 1 ||
		p.Ping != 5 || p.PingRestart != 30 || p.ConnectRetry != 5 || p.ConnectRetryMax != 3 {
		t.Errorf("fields %+v", p)
	}
	wantRemotes := []Remote{{"one.example", "443", "tcp4"}, {"two.example", "1195", "tcp4"}, {"192.0.2.7", "1196", "udp4"}}
	if !reflect.DeepEqual(p.Remotes, wantRemotes) {
		t.Errorf("remotes %+v", p.Remotes)
	}
	wantNet := []string{"route 10.10.0.0 255.255.0.0", "route-ipv6 fd00:10::/64", "redirect-gateway def1 bypass-dhcp",
		"dhcp-option DNS 10.10.0.53", "dns search-domains corp.example"}
	if !reflect.DeepEqual(p.NetOptions, wantNet) {
		t.Errorf("net options %q", p.NetOptions)
	}
	hp := p.HTTPProxy
	if hp == nil || hp.Host != "proxy.example" || hp.Port != "3128" || hp.AuthFile != "[inline]" || hp.Method != "basic" ||
		hp.UserPass != "proxyuser\nproxypass\n" || !reflect.DeepEqual(hp.Options, [][]string{{"AGENT", "Mozilla/5.0 (X11; Linux)"}}) {
		t.Errorf("proxy %+v", hp)
	}
	// Every option of it is applied: no warnings.
	if got := warningOptions(p); len(got) != 0 {
		t.Errorf("warnings %v", p.Warnings)
	}
	for _, w := range p.Warnings {
		if strings.Contains(w.String(), "s3cret") {
			t.Error("password in a warning")
		}
	}
}

func TestBOMCRLFQuotes(t *testing.T) {
	p := parseFile(t, "bom-crlf-quotes")
	if !reflect.DeepEqual(p.Remotes, []Remote{{"vpn.example", "1194", "udp"}, {"vpn2.example", "1194", "udp"}}) {
		t.Errorf("remotes %+v", p.Remotes)
	}
	if sc := p.StaticChallenge; sc == nil || sc.Text != `Code: "123"` || sc.Echo || sc.Format != "concat" {
		t.Errorf("static challenge %+v", sc)
	}
	if p.Setenv["CUSTOM"] != `a b" c` || p.Compress != "stub-v2" || p.AllowCompression != "no" {
		t.Errorf("fields %+v", p)
	}
	if strings.Contains(p.CA, "\r") || !strings.HasPrefix(p.CA, "-----BEGIN CERTIFICATE-----\n") {
		t.Errorf("CA keeps CR: %q", p.CA[:40])
	}
}

func TestIgnoreUnknown(t *testing.T) {
	p := parseFile(t, "ignore-unknown")
	want := []string{"fragment", "fragment", "some-future-option", "another-future-option", "socks-proxy", "user",
		"group", "daemon", "log", "status", "management", "ifconfig", "auth-token"}
	if got := warningOptions(p); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings %v", p.Warnings)
	}
	if len(p.PeerFingerprints) != 2 || p.PeerFingerprints[1] != strings.ToUpper("ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89") {
		t.Errorf("fingerprints %q", p.PeerFingerprints)
	}
	if p.TunMTU != 1500 || p.TunMTUMax != 1600 || !reflect.DeepEqual(p.NetOptions, []string{"topology subnet"}) {
		t.Errorf("fields %+v", p)
	}
	// Without the allow-lists the same options are refused.
	text := strings.NewReplacer("ignore-unknown-option", "# was ignore-unknown-option", "setenv opt", "# was setenv opt").
		Replace(readFile(t, "testdata/good/ignore-unknown.ovpn"))
	_, err := Parse(text)
	if err == nil {
		t.Fatal("accepted without ignore-unknown-option")
	}
	for _, w := range []string{"line 21: option 'fragment' is not supported", "line 23: option 'some-future-option' is not a known OpenVPN option",
		"line 25: option 'socks-proxy' is not supported"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}

// TestForwardCompatible: "setenv FORWARD_COMPATIBLE 1" turns unknown
// options into warnings but still refuses known unsupported ones.
func TestForwardCompatible(t *testing.T) {
	base := "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\npeer-fingerprint " + strings.Repeat("AA:", 31) + "AA\n"
	p, err := Parse("setenv FORWARD_COMPATIBLE 1\n" + base + "future-thing 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := warningOptions(p); !reflect.DeepEqual(got, []string{"future-thing"}) {
		t.Errorf("warnings %v", p.Warnings)
	}
	if _, err := Parse("setenv FORWARD_COMPATIBLE 1\n" + base + "fragment 1300\n"); err == nil {
		t.Error("fragment accepted under FORWARD_COMPATIBLE")
	}
}

func TestPushAssembler(t *testing.T) {
	p := parseFile(t, "inline-creds-proxy")
	a := p.PushAssembler()
	if done, err := a.Add("PUSH_REPLY,route 192.168.0.0 255.255.0.0,topology subnet,ifconfig 10.8.0.2 255.255.255.0,route-gateway 10.8.0.1"); !done || err != nil {
		t.Fatal(done, err)
	}
	r, err := a.Reply()
	if err != nil {
		t.Fatal(err)
	}
	// route-nopull drops the pushed route; the profile's own stay.
	if len(r.Routes) != 1 || r.Routes[0].Prefix.String() != "10.10.0.0/16" || len(r.RoutesIPv6) != 1 || !r.RedirectGateway {
		t.Fatalf("reply %+v", r)
	}
	if p.Compression() != "comp-lzo no" {
		t.Errorf("compression %q", p.Compression())
	}
	p = parseFile(t, "provider-connections")
	a = p.PushAssembler()
	a.Add("PUSH_REPLY,redirect-gateway ipv6 def1")
	if _, err := a.Reply(); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Errorf("pull-filter reject: %v", err)
	}
}
