package ctlmsg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func TestMarshalClientLayout(t *testing.T) {
	var m KeyMethod2
	fill(m.PreMaster[:], 0xaa)
	fill(m.Random1[:], 0xbb)
	fill(m.Random2[:], 0xcc)
	m.Options = "V4"
	m.Username = "u"
	m.Password = "pw"
	m.PeerInfo = "IV_VER=1\n"
	got := m.MarshalClient()

	var want []byte
	want = append(want, 0, 0, 0, 0, 2)
	want = append(want, bytes.Repeat([]byte{0xaa}, 48)...)
	want = append(want, bytes.Repeat([]byte{0xbb}, 32)...)
	want = append(want, bytes.Repeat([]byte{0xcc}, 32)...)
	want = append(want, 0, 3, 'V', '4', 0)
	want = append(want, 0, 2, 'u', 0)
	want = append(want, 0, 3, 'p', 'w', 0)
	want = append(want, 0, 10)
	want = append(want, "IV_VER=1\n\x00"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}
}

func TestMarshalClientNoCredentials(t *testing.T) {
	m := KeyMethod2{Options: "V4"}
	got := m.MarshalClient()
	tail := got[4+1+48+64:]
	want := []byte{0, 3, 'V', '4', 0, 0, 0, 0, 0, 0, 1, 0}
	if !bytes.Equal(tail, want) {
		t.Fatalf("tail %x, want %x", tail, want)
	}
}

func TestMarshalClientPasswordOnly(t *testing.T) {
	// An empty username next to a password is sent as a present, empty string.
	m := KeyMethod2{Password: "tok"}
	tail := m.MarshalClient()[4+1+48+64+3:]
	want := []byte{0, 1, 0, 0, 4, 't', 'o', 'k', 0, 0, 1, 0}
	if !bytes.Equal(tail, want) {
		t.Fatalf("tail %x, want %x", tail, want)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		m    KeyMethod2
		want string
	}{
		{KeyMethod2{Options: strings.Repeat("x", 512)}, "options string"},
		{KeyMethod2{Username: strings.Repeat("x", 4096)}, "username"},
		{KeyMethod2{Password: "a\x00b"}, "NUL"},
	}
	for _, c := range cases {
		err := c.m.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want error containing %q", err, c.want)
		}
	}
	ok := KeyMethod2{Options: strings.Repeat("x", 511), Username: "a", Password: "b"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid message: %v", err)
	}
}

func serverBytes(opts string, tail ...byte) []byte {
	b := []byte{0, 0, 0, 0, 2}
	b = append(b, bytes.Repeat([]byte{1}, 32)...)
	b = append(b, bytes.Repeat([]byte{2}, 32)...)
	b = appendString(b, opts)
	return append(b, tail...)
}

func TestParseServerKeyMethod2(t *testing.T) {
	full := serverBytes("V4,dev-type tun,tls-server", 0, 0, 0, 0, 0, 5, 'I', '=', '1', '\n', 0)
	cases := []struct {
		name     string
		in       []byte
		opts, pi string
		err      string
	}{
		{"full", full, "V4,dev-type tun,tls-server", "I=1\n", ""},
		{"options only", serverBytes("V4"), "V4", "", ""},
		{"empty creds no peer-info", serverBytes("V4", 0, 0, 0, 0), "V4", "", ""},
		{"empty options", serverBytes("", 0, 0), "", "", ""},
		{"short header", []byte{0, 0, 0, 0, 2, 1}, "", "", "truncated"},
		{"nonzero prefix", append([]byte{0, 0, 0, 1}, serverBytes("V4")[4:]...), "", "", "leading 4 bytes"},
		{"key method 1", append([]byte{0, 0, 0, 0, 1}, serverBytes("V4")[5:]...), "", "", "key method 1"},
		{"options length overruns", serverBytes("V4")[:69+3], "", "", "truncated"},
		{"missing options", serverBytes("V4")[:69], "", "", "options length"},
		{"peer-info truncated", serverBytes("V4", 0, 0, 0, 0, 0, 9, 'a'), "", "", "peer-info"},
		{"odd length byte", serverBytes("V4", 0), "", "", "username length"},
		{"options too long", serverBytes(strings.Repeat("o", 600)), "", "", "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseServerKeyMethod2(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Options != c.opts || m.PeerInfo != c.pi {
				t.Fatalf("got %q %q", m.Options, m.PeerInfo)
			}
			if m.Random1[0] != 1 || m.Random2[31] != 2 {
				t.Fatalf("randoms misplaced")
			}
		})
	}
	_, err := ParseServerKeyMethod2(nil)
	if !errors.Is(err, ErrShort) {
		t.Fatalf("nil input: %v", err)
	}
}

func TestPeerInfo(t *testing.T) {
	got := PeerInfo(PeerInfoParams{
		Version:    "3.go",
		GUIVersion: "ovpn3go 0.1",
		Ciphers:    []string{"AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305"},
		TCP:        true,
		MTU:        1600,
		ProtoBits:  ProtoDataV2 | ProtoRequestPush | ProtoTLSKeyExport | ProtoAuthPendingKW | ProtoCCExitNotify | ProtoAuthFailTemp | ProtoDNSOptionV2,
		CompStubV2: true,
		Extra:      []string{"UV_X=1", "bad", "UV_\nY=2"},
	})
	want := "IV_VER=3.go\nIV_PLAT=linux\nIV_TCPNL=1\nIV_MTU=1600\nIV_NCP=2\n" +
		"IV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO=2462\n" +
		"IV_COMP_STUBv2=1\nIV_GUI_VER=ovpn3go 0.1\nUV_X=1\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	m := ParsePeerInfo(got)
	if m["IV_PROTO"] != "2462" || m["IV_PLAT"] != "linux" {
		t.Fatalf("parsed %v", m)
	}
	minimal := PeerInfo(PeerInfoParams{Version: "v\nx", ProtoBits: ProtoDataV2})
	for _, bad := range []string{"IV_LZO", "IV_COMP", "IV_SSO", "IV_TCPNL", "IV_MTU", "IV_GUI_VER", "IV_CIPHERS"} {
		if strings.Contains(minimal, bad) {
			t.Errorf("minimal peer-info announces %s:\n%s", bad, minimal)
		}
	}
	if !strings.HasPrefix(minimal, "IV_VER=v x\n") {
		t.Errorf("newline not neutralised: %q", minimal)
	}
	if s := PeerInfo(PeerInfoParams{SSO: "webauth,crtext"}); !strings.Contains(s, "IV_SSO=webauth,crtext\n") {
		t.Errorf("no IV_SSO: %q", s)
	}
}

func TestOptionsString(t *testing.T) {
	cases := []struct {
		p    OptionsParams
		want string
	}{
		{OptionsParams{Cipher: "AES-256-GCM", CipherAnnounced: true, KeyDirection: -1},
			"V4,dev-type tun,link-mtu 1521,tun-mtu 1500,proto UDPv4,cipher AES-256-GCM,auth [null-digest],keysize 256,key-method 2,tls-client"},
		{OptionsParams{KeyDirection: -1},
			"V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client"},
		{OptionsParams{Cipher: "AES-256-CBC", CipherAnnounced: true, Auth: "SHA256", TLSAuth: true, KeyDirection: 1, LinkMTU: 1570},
			"V4,dev-type tun,link-mtu 1570,tun-mtu 1500,proto UDPv4,keydir 1,cipher AES-256-CBC,auth SHA256,keysize 256,tls-auth,key-method 2,tls-client"},
		{OptionsParams{Cipher: "AES-128-GCM", TCP: true, CompFraming: true, TunMTU: 1400, KeyDirection: -1},
			"V4,dev-type tun,link-mtu 1424,tun-mtu 1400,proto TCPv4_CLIENT,comp-lzo,auth [null-digest],keysize 128,key-method 2,tls-client"},
	}
	for _, c := range cases {
		if got := OptionsString(c.p); got != c.want {
			t.Errorf("OptionsString(%+v)\n got %s\nwant %s", c.p, got, c.want)
		}
		if len(c.want)+1 > MaxOptionsLen {
			t.Errorf("too long")
		}
	}
}

func TestParseMessage(t *testing.T) {
	cases := []struct {
		in   string
		kind Kind
		body string
		err  string
	}{
		{"PUSH_REPLY,route-gateway 10.8.0.1,ping 10\x00", PushReply, "route-gateway 10.8.0.1,ping 10", ""},
		{"PUSH_REPLY", PushReply, "", ""},
		{"AUTH_FAILED\x00", AuthFailed, "", ""},
		{"AUTH_FAILED,TEMP[backoff 30,advance no]:busy\x00\x00", AuthFailed, "TEMP[backoff 30,advance no]:busy", ""},
		{"AUTH_PENDING,timeout 300", AuthPending, "timeout 300", ""},
		{"INFO_PRE,WEB_AUTH::https://x/y", InfoPre, "WEB_AUTH::https://x/y", ""},
		{"INFO,hello", Info, "hello", ""},
		{"RESTART,[N]server shutting down", Restart, "[N]server shutting down", ""},
		{"HALT,bye", Halt, "bye", ""},
		{"EXIT", Exit, "", ""},
		{"CR_RESPONSE,MTIz", CRResponse, "MTIz", ""},
		{"PUSH_UPDATE,route 1.2.3.0 255.255.255.0", PushUpdate, "route 1.2.3.0 255.255.255.0", ""},
		{"ACC,1,2,3,x", Unknown, "ACC,1,2,3,x", ""},
		{"INFORMATION", Unknown, "INFORMATION", ""},
		{"INFO,Grüße", Info, "Grüße", ""},
		{"", 0, "", "empty"},
		{"\x00\x00", 0, "", "empty"},
		{"INFO,\xff\xfe", 0, "", "UTF-8"},
		{"INFO,a\x00b", 0, "", "control byte"},
		{"INFO,a\x1bb", 0, "", "control byte"},
	}
	for _, c := range cases {
		m, err := ParseMessage([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseMessage(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || m.Kind != c.kind || m.Body != c.body {
			t.Errorf("ParseMessage(%q) = %v %q, %v; want %v %q", c.in, m.Kind, m.Body, err, c.kind, c.body)
		}
	}
	if _, err := ParseMessage(bytes.Repeat([]byte("a"), MaxMessageLen+1)); err == nil {
		t.Error("oversized message accepted")
	}
}

func TestMarshal(t *testing.T) {
	if got := string(Marshal(PushRequest, "")); got != "PUSH_REQUEST\x00" {
		t.Errorf("got %q", got)
	}
	if got := string(Marshal(CRResponse, "MTIz")); got != "CR_RESPONSE,MTIz\x00" {
		t.Errorf("got %q", got)
	}
	m, err := ParseMessage(Marshal(Exit, ""))
	if err != nil || m.Kind != Exit {
		t.Errorf("round trip: %v %v", m, err)
	}
}

func TestParseAuthFailed(t *testing.T) {
	f, err := ParseAuthFailed("TEMP[backoff 30,advance remote]:server busy")
	if err != nil || !f.Temp || f.Backoff != 30 || f.Advance != "remote" || f.Reason != "server busy" {
		t.Errorf("TEMP: %+v %v", f, err)
	}
	f, err = ParseAuthFailed("TEMP")
	if err != nil || !f.Temp || f.Reason != "" {
		t.Errorf("bare TEMP: %+v %v", f, err)
	}
	if _, err = ParseAuthFailed("TEMP[backoff x]"); err == nil {
		t.Error("bad backoff accepted")
	}
	if _, err = ParseAuthFailed("TEMP[backoff 3"); err == nil {
		t.Error("unterminated flags accepted")
	}
	f, err = ParseAuthFailed("SESSION:Invalid auth token")
	if err != nil || !f.Session || f.Reason != "Invalid auth token" {
		t.Errorf("SESSION: %+v %v", f, err)
	}
	f, err = ParseAuthFailed("CRV1:R,E:Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l:dGVzdHVzZXI=:Enter your OTP")
	if err != nil || f.Challenge == nil {
		t.Fatalf("CRV1: %+v %v", f, err)
	}
	c := f.Challenge
	if !c.Echo || !c.ResponseRequired || c.Username != "testuser" || c.Text != "Enter your OTP" || c.StateID != "Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l" {
		t.Errorf("challenge %+v", c)
	}
	if r := c.Response("123"); r != "CRV1::Om01u7Fh4LrGBS7uh0SWmzwabUiGiW6l::123" {
		t.Errorf("response %q", r)
	}
	if _, err = ParseAuthFailed("CRV1:R:x:!!!:t"); err == nil {
		t.Error("bad base64 accepted")
	}
	if _, err = ParseAuthFailed("CRV1:R:x"); err == nil {
		t.Error("short CRV1 accepted")
	}
	f, _ = ParseAuthFailed("bad password")
	if f.Reason != "bad password" || f.Temp || f.Session {
		t.Errorf("plain: %+v", f)
	}
}

func TestParseAuthPendingRestartInfo(t *testing.T) {
	if n, err := ParseAuthPending("timeout 300"); n != 300 || err != nil {
		t.Errorf("timeout: %d %v", n, err)
	}
	if n, err := ParseAuthPending(""); n != 0 || err != nil {
		t.Errorf("empty: %d %v", n, err)
	}
	if _, err := ParseAuthPending("timeout -1"); err == nil {
		t.Error("negative timeout accepted")
	}
	r := ParseRestart("[PN]going away")
	if !r.KeepCredentials || !r.NextRemote || r.Text != "going away" {
		t.Errorf("restart %+v", r)
	}
	if r := ParseRestart("plain"); r.KeepCredentials || r.Text != "plain" {
		t.Errorf("restart %+v", r)
	}
	p := ParseInfo("WEB_AUTH:external:https://example.invalid/auth?a=b:c")
	if p.Method != "WEB_AUTH" || p.Flags != "external" || p.Value != "https://example.invalid/auth?a=b:c" {
		t.Errorf("web auth %+v", p)
	}
	p = ParseInfo("CR_TEXT:E,R:Enter code")
	if p.Method != "CR_TEXT" || p.Flags != "E,R" || p.Value != "Enter code" {
		t.Errorf("cr text %+v", p)
	}
	if p := ParseInfo("OPEN_URL:https://x"); p.Method != "OPEN_URL" || p.Value != "https://x" {
		t.Errorf("open url %+v", p)
	}
	if p := ParseInfo("hello there"); p.Method != "" || p.Value != "hello there" {
		t.Errorf("plain %+v", p)
	}
}
