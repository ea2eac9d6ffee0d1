package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestIntegrationPeerInfo checks what the real OpenVPN 2.6 server learns
// from the client's peer info (its client-connect script's environment):
// with push-peer-info the profile's "setenv UV_*" values, IV_SSL and
// IV_PLAT_VER; IV_MTU is tun-mtu-max (1600 by default). Without
// push-peer-info no UV_* variable is sent.
func TestIntegrationPeerInfo(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	cases := []struct {
		name, extra  string
		want, absent []string
	}{
		{name: "push-peer-info", extra: "push-peer-info\nsetenv UV_TEAM blue\nsetenv UV_SEAT 'row 4'\ntun-mtu-max 1580\n",
			// The server's environment shows spaces as '_'.
			want: []string{"IV_MTU=1580", "UV_TEAM=blue", "UV_SEAT=row_4", "IV_SSL=Go_crypto/tls", "IV_PLAT_VER="}},
		{name: "default", extra: "setenv UV_TEAM blue\n",
			want: []string{"IV_MTU=1600"}, absent: []string{"UV_TEAM", "IV_SSL", "IV_PLAT_VER"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			envFile := filepath.Join(dir, "env")
			script := filepath.Join(dir, "connect.sh")
			if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nenv > %s\n", envFile)), 0o755); err != nil {
				t.Fatal(err)
			}
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Extra: []string{"script-security 2", "client-connect " + script}})
			ev := newCtlEvents()
			ctlStartClient(t, pair, srv.Profile()+tc.extra, Credentials{}, ev)
			ev.waitFor(t, StateConnected, 30*time.Second)
			b, err := os.ReadFile(envFile)
			if err != nil {
				t.Fatalf("client-connect did not run: %v\n%s", err, srv.LogTail(20))
			}
			env := "\n" + string(b)
			for _, w := range tc.want {
				if !strings.Contains(env, "\n"+w) {
					t.Errorf("server environment lacks %q:\n%s", w, b)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(env, "\n"+a+"=") {
					t.Errorf("server environment has %s:\n%s", a, b)
				}
			}
		})
	}
}
