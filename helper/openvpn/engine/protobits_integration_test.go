package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestIntegrationIVProtoDNS: the real OpenVPN 2.6 server learns from the
// client's IV_PROTO (its client-connect script's environment) that the
// client understands the 2.6 "dns" option (bit 11), and not the
// deprecated first version (bit 6).
func TestIntegrationIVProtoDNS(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := filepath.Join(dir, "connect.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nenv > %s\n", envFile)), 0o755); err != nil {
		t.Fatal(err)
	}
	pair := testbed.NetPair(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Extra: []string{"script-security 2", "client-connect " + script}})
	ev := newCtlEvents()
	ctlStartClient(t, pair, srv.Profile(), Credentials{}, ev)
	ev.waitFor(t, StateConnected, 30*time.Second)
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("client-connect did not run: %v\n%s", err, srv.LogTail(20))
	}
	m := regexp.MustCompile(`(?m)^IV_PROTO=(\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("server environment has no IV_PROTO:\n%s", b)
	}
	bits, _ := strconv.ParseUint(string(m[1]), 10, 32)
	if uint32(bits)&ctlmsg.ProtoDNSOptionV2 == 0 || uint32(bits)&ctlmsg.ProtoDNSOption != 0 {
		t.Errorf("server saw IV_PROTO=%d: want bit 11 (dns option v2) and not bit 6", bits)
	}
}
