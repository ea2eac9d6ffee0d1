package backend

import (
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

func TestPhrasings(t *testing.T) {
	a := slog.Any
	for _, tc := range []struct {
		msg   string
		level slog.Level
		attrs []slog.Attr
		want  string
		cat   api.LogCategory
	}{
		{"connecting", slog.LevelDebug, []slog.Attr{a("server", "198.18.0.1:1194/udp"), a("session", "ab")},
			"Connecting to 198.18.0.1:1194 over UDP", api.LogCategoryInfo},
		{"connecting", slog.LevelDebug, []slog.Attr{a("server", "[2001:db8::1]:443/tcp via http-proxy 10.0.0.1:3128")},
			"Connecting to [2001:db8::1]:443 over TCP via the HTTP proxy 10.0.0.1:3128", api.LogCategoryInfo},
		{"connecting", slog.LevelInfo, []slog.Attr{a("config", "/net/openvpn/v3/configuration/x")},
			"Starting the VPN client (profile /net/openvpn/v3/configuration/x)", api.LogCategoryVerb1},
		{"TLS handshake done", slog.LevelInfo, []slog.Attr{a("server", "198.18.0.1:1194/udp"), a("key_id", 0), a("version", "TLS 1.3"),
			a("cipher", "TLS_AES_256_GCM_SHA384"), a("took", 6*time.Millisecond)},
			"TLS 1.3 handshake with the server done (TLS_AES_256_GCM_SHA384)", api.LogCategoryInfo},
		{"TLS handshake done", slog.LevelInfo, []slog.Attr{a("key_id", 2), a("version", "TLS 1.2"), a("cipher", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")},
			"TLS 1.2 handshake with the server done for key 2 (TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)", api.LogCategoryVerb1},
		{"connected", slog.LevelInfo, []slog.Attr{a("tun", "ovpn0"), a("cipher", "AES-256-GCM"), a("peer_id", 1), a("ekm", true),
			a("framing", "none"), a("took", 19*time.Millisecond)},
			"Connected: tunnel ovpn0, AES-256-GCM (in 19ms)", api.LogCategoryInfo},
		{"state", slog.LevelInfo, []slog.Attr{a("state", "connecting"), a("detail", "")}, "Starting the connection", api.LogCategoryVerb2},
		{"state", slog.LevelInfo, []slog.Attr{a("state", "failed"), a("detail", "no response from the server")},
			"Connection failed: no response from the server", api.LogCategoryError},
		{"state", slog.LevelInfo, []slog.Attr{a("state", "auth-failed"), a("detail", "AUTH_FAILED")}, "Authentication failed: AUTH_FAILED", api.LogCategoryError},
		{"state", slog.LevelInfo, []slog.Attr{a("state", "reconnecting"), a("detail", "ping timeout")}, "Reconnecting: ping timeout", api.LogCategoryWarn},
		{"state", slog.LevelInfo, []slog.Attr{a("state", "done"), a("detail", "inactivity timeout")}, "The session ended: inactivity timeout", api.LogCategoryInfo},
		{"renegotiated", slog.LevelInfo, []slog.Attr{a("key_id", 3), a("took", 12*time.Millisecond)}, "New data channel keys in use (key 3, after 12ms)", api.LogCategoryVerb1},
		{"key limit reached", slog.LevelInfo, []slog.Attr{a("key_id", 1), a("limit", "reneg-bytes")}, "Data channel key 1 reached its limit (reneg-bytes); renegotiating", api.LogCategoryInfo},
		{"retrying", slog.LevelWarn, []slog.Attr{a("after", 5*time.Second), a("reason", "AUTH_FAILED,TEMP"), a("advance", true)}, "Trying again in 5s: AUTH_FAILED,TEMP", api.LogCategoryWarn},
		{"connection ended", slog.LevelWarn, []slog.Attr{a("server", "198.18.0.1:1194/udp"), a("err", "ping-restart")}, "The connection to 198.18.0.1:1194 over UDP ended: ping-restart", api.LogCategoryWarn},
		{"TUN device ready", slog.LevelInfo, []slog.Attr{a("device", "ovpn0"), a("path", "/net/openvpn/v3/netcfg/1_ovpn0")}, "Tunnel device ovpn0 is ready", api.LogCategoryVerb1},
		{"web authentication required", slog.LevelInfo, []slog.Attr{a("method", "WEB_AUTH"), a("url", "https://sso.example/x")}, "The server asks for web authentication: open https://sso.example/x", api.LogCategoryInfo},
		{"server reset", slog.LevelDebug, []slog.Attr{a("server", "198.18.0.1:1194/udp"), a("server_session", "80f5")}, "The server answered the connection request", api.LogCategoryVerb2},
		{"server address changed (float)", slog.LevelInfo, []slog.Attr{a("from", "198.18.0.1:1194"), a("to", "198.18.0.9:1194")},
			"The server moved from 198.18.0.1:1194 to 198.18.0.9:1194 (float)", api.LogCategoryInfo},
		{"pushed option unknown to this client, ignored", slog.LevelWarn, []slog.Attr{a("option", "block-outside-dns")},
			"The server pushed the option 'block-outside-dns', which this client does not know; ignored", api.LogCategoryWarn},
		{"no address of the remote answered", slog.LevelWarn, []slog.Attr{a("remote", "vpn.example"), a("err", "timeout")},
			"No address of the server vpn.example answered: timeout", api.LogCategoryWarn},
		// no phrasing: still a sentence
		{"dropped control packet", slog.LevelDebug, []slog.Attr{a("op", 4), a("err", "bad HMAC")}, "Dropped control packet (op 4): bad HMAC", api.LogCategoryVerb2},
	} {
		got, cat := phrase(tc.msg, tc.level, tc.attrs)
		if got != tc.want || cat != tc.cat {
			t.Errorf("%s %v: %q at %s, want %q at %s", tc.msg, tc.attrs, got, cat, tc.want, tc.cat)
		}
		if strings.Contains(got, "=") && !strings.Contains(tc.want, "=") {
			t.Errorf("%s: a key=value fragment in %q", tc.msg, got)
		}
	}
}

// Every event the engine and the backend log at INFO or above has a
// phrasing (a new one must get its sentence, not the generic rendering).
func TestEveryInfoEventHasAPhrasing(t *testing.T) {
	for _, dir := range []string{".", "../openvpn/engine", "../openvpn/control"} {
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(node ast.Node) bool {
				call, ok := node.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Info" && sel.Sel.Name != "Warn" && sel.Sel.Name != "Error") {
					return true
				}
				// only the session's loggers: a.log, c.log, b.log, …
				recv, ok := sel.X.(*ast.SelectorExpr)
				if !ok || recv.Sel.Name != "log" {
					return true
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				msg, _ := strconv.Unquote(lit.Value)
				n++
				if _, ok := phrasings[msg]; !ok {
					t.Errorf("%s: %s(%q) has no phrasing in logsentence.go", fset.Position(call.Pos()), sel.Sel.Name, msg)
				}
				return true
			})
		}
		if n == 0 {
			t.Errorf("%s: no log calls found; is the walk still right?", dir)
		}
	}
}
