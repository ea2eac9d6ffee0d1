package profile

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  string
	}{
		{"remote a.example 1194 udp", []string{"remote", "a.example", "1194", "udp"}, ""},
		{"  remote\ta   b  ", []string{"remote", "a", "b"}, ""},
		{`static-challenge "Enter PIN" 1`, []string{"static-challenge", "Enter PIN", "1"}, ""},
		{`x 'single "quoted"' y`, []string{"x", `single "quoted"`, "y"}, ""},
		{`x 'back\slash'`, []string{"x", `back\slash`}, ""},
		{`x "esc\"aped\\"`, []string{"x", `esc"aped\`}, ""},
		{`x a\ b c`, []string{"x", "a b", "c"}, ""},
		{`x C:\\dir`, []string{"x", `C:\dir`}, ""},
		{"remote a # comment", []string{"remote", "a"}, ""},
		{"remote a ; comment", []string{"remote", "a"}, ""},
		{"remote a#b", []string{"remote", "a#b"}, ""},
		{`x "a#b" ';'`, []string{"x", "a#b", ";"}, ""},
		{`x ""`, []string{"x", ""}, ""},
		{`x mid"quote`, []string{"x", `mid"quote`}, ""},
		{"# whole line", nil, ""},
		{`x "open`, nil, `no closing quotation (")`},
		{`x 'open`, nil, "no closing quotation (')"},
		{`x \`, nil, "backslash at end of line"},
	}
	for _, c := range cases {
		got, err := tokenize(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("tokenize(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("tokenize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "two words", `a"b`, `back\slash`, "#hash", ";semi", "tab\there", "'", "a'b", "ünïcode"} {
		got, err := tokenize("x " + quote(s))
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("quote(%q) = %s reads back as %q, %v", s, quote(s), got, err)
		}
	}
}

func TestInlineTag(t *testing.T) {
	cases := []struct {
		in      string
		name    string
		closing bool
		ok      bool
	}{
		{"<ca>", "ca", false, true},
		{"</tls-crypt-v2>", "tls-crypt-v2", true, true},
		{"<>", "", false, false},
		{"</>", "", false, false},
		{"<ca", "", false, false},
		{"<c a>", "", false, false},
	}
	for _, c := range cases {
		name, closing, ok := inlineTag(c.in)
		if name != c.name || closing != c.closing || ok != c.ok {
			t.Errorf("inlineTag(%q) = %q %v %v", c.in, name, closing, ok)
		}
	}
}

const minimal = "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"

func TestMinimalAndDefaults(t *testing.T) {
	p := mustParse(t, minimal)
	if p.Proto != "udp" || p.Port != "1194" || p.Remotes[0] != (Remote{"192.0.2.1", "1194", "udp"}) ||
		p.KeyDirection != -1 || p.Verb != 1 || p.PingRestart != 120 || p.ConnectRetry != 1 ||
		p.ConnectRetryMaxDelay != 300 || p.ServerPollTimeout != 120 || p.Ping != 0 {
		t.Errorf("defaults %+v", p)
	}
	if !reflect.DeepEqual(p.Options[2], Option{Name: "remote", Args: []string{"192.0.2.1"}, Line: 3}) ||
		!reflect.DeepEqual(p.Options[4], Option{Name: "ca", Args: []string{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, Line: 5, Inline: true}) {
		t.Errorf("options %+v", p.Options)
	}
	checkRoundTrip(t, p)
}

func TestLimits(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"profile size", strings.Repeat("#\n", MaxProfileSize/2+1), "limit"},
		{"line length", "client\nremote " + strings.Repeat("a", MaxLineLen) + "\n", "line 2: line is"},
		{"options", strings.Repeat("nobind\n", MaxOptions+1), "more than 2000 options"},
		{"inline size", "<ca>\n" + strings.Repeat(strings.Repeat("A", 63)+"\n", MaxInlineSize/64+1) + "</ca>\n", "line 1: inline block <ca> is"},
		{"args", "remote" + strings.Repeat(" a", MaxArgs+1) + "\n", "line 1: option 'remote' has 17 parameters"},
		{"connections", strings.Repeat("<connection>\nremote a\n</connection>\n", MaxConnections+1), "more than 256 <connection> blocks"},
		{"nested", "<connection>\n<connection>\nremote a\n</connection>\n</connection>\n", "cannot be nested"},
		{"stray close", "</ca>\n", "line 1: closing tag </ca> without opening <ca>"},
	}
	for _, c := range cases {
		_, err := Parse(c.text)
		var pe *ParseError
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %.300v, want containing %q", c.name, err, c.want)
		}
	}
}

func TestAllProblemsReported(t *testing.T) {
	text := "client\ndev tun\nremote 192.0.2.1\nfragment 1300\nsocks-proxy 127.0.0.1 1080\nca ca.crt\nverb x\nauth-user-pass\n"
	_, err := Parse(text)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err %v", err)
	}
	var lines []int
	for _, p := range pe.Problems {
		lines = append(lines, p.Line)
	}
	if !reflect.DeepEqual(lines, []int{4, 5, 6, 7}) {
		t.Errorf("problem lines %v:\n%v", lines, err)
	}
	if pe.Problems[0].Option != "fragment" || pe.Problems[0].Error() != "line 4: option 'fragment' is not supported: internal fragmentation is not supported; use mssfix or fix the path MTU" {
		t.Errorf("first problem %q", pe.Problems[0].Error())
	}
	var one Problem
	if !errors.As(err, &one) || one.Line != 4 {
		t.Errorf("errors.As(Problem) = %+v", one)
	}
}

func TestMiscOptions(t *testing.T) {
	base := minimal
	cases := []struct {
		extra string
		check func(*Profile) bool
	}{
		{"compress", func(p *Profile) bool { return p.Compress == "stub" && len(p.Warnings) == 0 }},
		{"compress lz4-v2", func(p *Profile) bool { return p.Compress == "lz4-v2" && len(p.Warnings) == 1 }},
		{"comp-lzo", func(p *Profile) bool { return p.CompLZO == "adaptive" && len(p.Warnings) == 1 }},
		{"explicit-exit-notify 3", func(p *Profile) bool { return p.ExplicitExitNotify == 3 }},
		{"--remote-random", func(p *Profile) bool { return p.RemoteRandom }},
		{"reneg-bytes 64000000", func(p *Profile) bool { return p.RenegBytes == 64000000 }},
		{"tls-version-max 1.3", func(p *Profile) bool { return p.TLSVersionMax == "1.3" }},
		{"verify-x509-name 'C=NL, CN=vpn'", func(p *Profile) bool { return p.VerifyX509Name == "C=NL, CN=vpn" && p.VerifyX509Type == "subject" }},
		{"auth-user-pass creds.txt", func(p *Profile) bool {
			return len(p.Warnings) == 1 && strings.Contains(p.Warnings[0].String(), "creds.txt")
		}},
		{"dev-type tun\ndev vpn0", func(p *Profile) bool { return p.Dev == "vpn0" }},
		{"setenv opt block-outside-dns", func(p *Profile) bool { return len(p.Warnings) == 1 }},
		{"mode p2p\nkey-method 2\nping-exit 60\nhand-window 30\ntls-timeout 4\ntran-window 100", func(p *Profile) bool {
			return p.PingExit == 60 && p.HandWindow == 30 && p.TLSTimeout == 4 && p.TranWindow == 100
		}},
		{"<extra-certs>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</extra-certs>", func(p *Profile) bool { return strings.Contains(p.ExtraCerts, "AAAA") }},
		{"<crl-verify>\n-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n</crl-verify>", func(p *Profile) bool { return p.CRLVerify != "" }},
		{"<pkcs12>\nMIIK\nAAAA\n</pkcs12>", func(p *Profile) bool { return p.PKCS12 == "MIIK\nAAAA\n" }},
	}
	for _, c := range cases {
		p, err := Parse(base + c.extra + "\n")
		if err != nil {
			t.Errorf("%q: %v", c.extra, err)
			continue
		}
		if !c.check(p) {
			t.Errorf("%q: unexpected %+v", c.extra, p)
		}
		checkRoundTrip(t, p)
	}
	bad := []struct{ extra, want string }{
		{"dev vpn0", "add 'dev-type tun'"},
		{"remote-cert-tls client", "use 'server'"},
		{"mode server", "server-only"},
		{"key-method 1", "only key-method 2"},
		{"compress migrate", "server option"},
		{"keepalive 10 5", "at least twice"},
		{"static-challenge text 2", `"2" is not one of 0, 1`},
		{"crl-verify /etc/crl dir", "CRL directories"},
		{"http-proxy p.example 8080 /etc/creds", "credentials file"},
		{"http-proxy-user-pass creds", "inline"},
		{"<auth-user-pass>\nu\np\nextra\n</auth-user-pass>", "username line"},
		{"<tls-crypt-v2>\n-----BEGIN OpenVPN tls-crypt-v2 server key-----\nAA\n-----END OpenVPN tls-crypt-v2 server key-----\n</tls-crypt-v2>", "server key"},
		{"<key>\nnot pem\n</key>", "no PEM"},
		{"<pkcs12>\n!!!\n</pkcs12>", "base64"},
		{"<route>\nx\n</route>", "cannot be given as an inline block"},
		{"peer-fingerprint AA:BB", "not a SHA-256 fingerprint"},
		{"data-ciphers AES-256-GCM:bad/name", "not an algorithm name"},
		{"tls-cert-profile weird", "not one of"},
		{"setenv opt", "opt needs an option name"},
		{"dev null", "no tunnel"},
		{"dev-type tap", "TAP"},
		{"remote bad_host!", "not a host name"},
		{"route-nopull x", "takes no arguments"},
	}
	for _, c := range bad {
		_, err := Parse(base + c.extra + "\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want containing %q", c.extra, err, c.want)
		}
	}
}

// TestClassificationComplete checks that every option name OpenVPN 2.6/2.7
// accepts has a class, that applied ones have a handler and the others a
// reason.
func TestClassificationComplete(t *testing.T) {
	b, err := os.ReadFile("testdata/openvpn-options.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		n++
		if _, ok := Lookup(l); !ok {
			t.Errorf("option %q has no class", l)
		}
	}
	if n < 300 {
		t.Fatalf("only %d names in the list", n)
	}
	for _, info := range AllOptions() {
		if info.Class != Applied && info.Why == "" {
			t.Errorf("%s (%v) has no reason", info.Name, info.Class)
		}
		if info.Class == Applied && info.handle == nil {
			t.Errorf("%s is applied but has no handler", info.Name)
		}
		if info.Class == Refused && info.handle != nil {
			t.Errorf("%s is refused but has a handler", info.Name)
		}
	}
	if i, ok := Lookup("--block-outside-dns"); !ok || i.Class != Ignored {
		t.Errorf("Lookup with -- prefix: %+v %v", i, ok)
	}
	if Applied.String() != "applied" || Refused.String() != "refused" || Class(99).String() != "unknown" {
		t.Error("Class.String")
	}
}

func TestRenderOddNames(t *testing.T) {
	p := mustParse(t, "setenv FORWARD_COMPATIBLE 1\n"+minimal+"----odd x\n\"<ca>\" y\n\"\" z\n<future>\nstuff\n</future>\n")
	if len(p.Warnings) != 4 {
		t.Errorf("warnings %v", p.Warnings)
	}
	checkRoundTrip(t, p)
	p = mustParse(t, "# OVPN_ACCESS_SERVER_A_START\n# ## x\n#   y \n# OVPN_ACCESS_SERVER_A_STOP\n;OVPN_ACCESS_SERVER_B=1\n# OVPN_ACCESS_SERVER_C_START\n"+minimal)
	if !reflect.DeepEqual(p.ASMeta, map[string]string{"A": "## x\n  y", "B": "1", "C_START": ""}) {
		t.Errorf("meta %q", p.ASMeta)
	}
	checkRoundTrip(t, p)
}

func TestMaxPacketSize(t *testing.T) {
	p := mustParse(t, minimal+"max-packet-size 1000\n")
	if p.MaxPacketSize != 1000 || len(p.Warnings) != 0 {
		t.Errorf("max-packet-size %d warnings %v", p.MaxPacketSize, p.Warnings)
	}
	if _, err := Parse(minimal + "max-packet-size 100\n"); err == nil {
		t.Error("max-packet-size 100 accepted")
	}
}
