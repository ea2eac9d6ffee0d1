package testbed

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// A bench stack's polkitd (StackOptions.Polkitd) answers for the helper's
// actions: the shipped action file is installed and polkitd owns its name
// on the bus, so the session manager's questions get polkit's answer, not
// the bus's "no such service".
func TestStartPolkitd(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "dbus-daemon")
	restore, err := InstallPolkitActions()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Error(err)
		}
	})
	b := BusDaemonFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := StartPolkitd(ctx, b.Address, filepath.Join(t.TempDir(), "polkitd.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	conn, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// polkitd reads the action files as it starts; root is authorized
	// for every action it knows, and an action it does not know is an
	// error.
	r, err := polkit.New(conn).Check(ctx, conn.Names()[0], polkit.ActionSessionControlOwn, false)
	if err != nil || !r.Authorized {
		t.Fatalf("polkitd's answer for root and %s: %+v, %v; want authorized\n%s", polkit.ActionSessionControlOwn, r, err, p.LogTail(20))
	}
}
