package backend

import (
	"log/slog"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// The profile's TLS configuration is built and its handshake warmed when
// the profile arrives, before any Connect; the Connect's engine is given
// what was built; teardown ends a warm-up and none starts after it.
func TestProfilePreparedBeforeConnect(t *testing.T) {
	prof := variantA(t)
	b := &Backend{opts: Options{Logger: slog.New(slog.DiscardHandler)}}
	b.prepareProfile(prof)
	if b.prepared == nil {
		t.Fatal("no TLS configuration prepared at registration")
	}
	if b.warmStop == nil {
		t.Fatal("no warm-up handshake started at registration")
	}
	if b.inputs == nil || b.inputs.pending() {
		t.Error("a profile with a plain key asks for input")
	}
	cfg := b.engineConfig(prof, b.prepared, engine.Credentials{}, engine.Credentials{}, nil)
	if cfg.Prepared != b.prepared {
		t.Error("the Connect's engine is not given the prepared configuration")
	}
	if _, err := engine.New(cfg); err != nil {
		t.Fatal(err)
	}
	b.stopWarm() // returns once the warm-up goroutine ended

	late := &Backend{opts: b.opts, stopping: true}
	late.warm(b.prepared)
	if late.warmStop != nil {
		t.Error("a warm-up started while the backend stops")
	}
}

// variantA is the testbed's variant a profile, parsed.
func variantA(t *testing.T) *profile.Profile {
	t.Helper()
	text, err := testbed.PKI(t).Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return prof
}
