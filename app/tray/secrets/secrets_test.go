package secrets

import (
	"context"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/desktoptest"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestStoreLookupDelete runs against a real gnome-keyring on a private
// session bus.
func TestStoreLookupDelete(t *testing.T) {
	testenv.RequireCommand(t, "gnome-keyring-daemon")
	dir := t.TempDir()
	bus, conn := desktoptest.ConnectSessionBus(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kr, err := desktoptest.StartKeyring(ctx, dir, bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kr.Stop(2 * time.Second) })
	s, err := Open(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	a := map[string]string{"application": "ovpn3go-test", "profile": "/p/1", "slot": "password"}
	b := map[string]string{"application": "ovpn3go-test", "profile": "/p/2", "slot": "password"}
	if _, found, err := s.Lookup(ctx, a); err != nil || found {
		t.Fatalf("lookup before store: found=%v err=%v", found, err)
	}
	if err := s.Store(ctx, "ovpn3go: p1 password", a, "s3cret ü"); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "ovpn3go: p2 password", b, "other"); err != nil {
		t.Fatal(err)
	}
	// replace keeps one item per attribute set
	if err := s.Store(ctx, "ovpn3go: p1 password", a, "s3cret 2"); err != nil {
		t.Fatal(err)
	}
	if v, found, err := s.Lookup(ctx, a); err != nil || !found || v != "s3cret 2" {
		t.Fatalf("lookup = %q %v %v, want the replaced value", v, found, err)
	}
	if err := s.Delete(ctx, map[string]string{"application": "ovpn3go-test", "profile": "/p/1"}); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Lookup(ctx, a); found {
		t.Fatal("deleted secret still found")
	}
	if v, found, _ := s.Lookup(ctx, b); !found || v != "other" {
		t.Fatalf("the other profile's secret is gone too: %q %v", v, found)
	}
}

func TestNoService(t *testing.T) {
	_, conn := desktoptest.ConnectSessionBus(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Open(ctx, conn); err != ErrNoService {
		t.Fatalf("Open without a service: %v, want ErrNoService", err)
	}
}
