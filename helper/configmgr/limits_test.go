package configmgr_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/ratelimit"
)

// TestPerUserProfileLimits: a user's imports stop at the profile-count cap
// and at the total-bytes cap with a request error naming the limit; a
// refused import leaves nothing (no object, no file); another user and
// root are not held back by that user's profiles; root is not capped;
// removing a profile makes room again.
func TestPerUserProfileLimits(t *testing.T) {
	e := setup(t)
	// The stored text is re-rendered: measure it.
	p0 := e.importProfile(t, "measure", goodProfile, false, false)
	var text string
	if err := e.obj(p0).Call(api.InterfaceConfiguration+".Fetch", 0).Store(&text); err != nil {
		t.Fatal(err)
	}
	size := len(text)
	if err := e.obj(p0).Call(api.InterfaceConfiguration+".Remove", 0).Err; err != nil {
		t.Fatal(err)
	}
	drainEvents(e)

	user := busobjtest.DialAs(t, e.addr, 65534, 65534)
	other := busobjtest.DialAs(t, e.addr, 1, 1) // daemon: a uid the bus knows
	imp := func(c *dbus.Conn, name string, persistent bool) (dbus.ObjectPath, error) {
		var p dbus.ObjectPath
		err := c.Object(api.ServiceConfiguration, api.PathConfiguration).
			Call(api.InterfaceConfiguration+".Import", 0, name, goodProfile, false, persistent).Store(&p)
		return p, err
	}
	files := func() int {
		ents, err := os.ReadDir(e.dir)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}

	t.Run("count", func(t *testing.T) {
		e.svc.SetLimits(configmgrLimits(3, 1<<20))
		var mine []dbus.ObjectPath
		for i := range 3 {
			p, err := imp(user, fmt.Sprint("u", i), true)
			if err != nil {
				t.Fatalf("import %d within the cap: %v", i, err)
			}
			mine = append(mine, p)
		}
		before := files()
		_, err := imp(user, "u-over", true)
		if !api.IsDomain(err, api.DomainRequest) || api.ErrorText(err) != "Too many configuration profiles: this user already has 3 (limit 3)" {
			t.Errorf("import over the count cap: %v", err)
		}
		if n := files(); n != before {
			t.Errorf("a refused import left %d files, had %d", n, before)
		}
		var listed []dbus.ObjectPath
		if err := user.Object(api.ServiceConfiguration, api.PathConfiguration).Call(api.InterfaceConfiguration+".FetchAvailableConfigs", 0).Store(&listed); err != nil || len(listed) != 3 {
			t.Errorf("user's profiles after the refusal: %v %v, want 3", listed, err)
		}
		if _, err := imp(other, "o", false); err != nil {
			t.Errorf("another user's import: %v", err)
		}
		for i := range 5 {
			if _, err := imp(e.client, fmt.Sprint("root", i), false); err != nil {
				t.Errorf("root import %d (root is not capped): %v", i, err)
			}
		}
		if err := user.Object(api.ServiceConfiguration, mine[0]).Call(api.InterfaceConfiguration+".Remove", 0).Err; err != nil {
			t.Fatal(err)
		}
		if _, err := imp(user, "u-again", false); err != nil {
			t.Errorf("import after a removal made room: %v", err)
		}
	})

	t.Run("bytes", func(t *testing.T) {
		third := busobjtest.DialAs(t, e.addr, 2, 2) // bin
		e.svc.SetLimits(configmgrLimits(100, 2*size+size/2))
		for i := range 2 {
			if _, err := imp(third, fmt.Sprint("b", i), false); err != nil {
				t.Fatalf("import %d within the byte cap: %v", i, err)
			}
		}
		_, err := imp(third, "b-over", false)
		want := fmt.Sprintf("Configuration profiles too large: this user's profiles would hold %d bytes (limit %d)", 3*size, 2*size+size/2)
		if !api.IsDomain(err, api.DomainRequest) || api.ErrorText(err) != want {
			t.Errorf("import over the byte cap: %v, want %q", err, want)
		}
		if _, err := imp(e.client, "root-big", false); err != nil {
			t.Errorf("root import: %v", err)
		}
	})
}

func drainEvents(e *env) {
	for {
		select {
		case <-e.events:
		default:
			return
		}
	}
}

func configmgrLimits(n, bytes int) configmgr.Limits {
	return configmgr.Limits{MaxProfiles: n, MaxProfileBytes: bytes}
}

// TestImportRateLimit: a user's Import calls beyond ImportRate's burst are
// refused with a request error naming the limit, before the profile is
// parsed or stored; another user has a bucket of their own and root is not
// limited.
func TestImportRateLimit(t *testing.T) {
	e := setup(t)
	e.svc.SetLimits(configmgr.Limits{ImportRate: ratelimit.Rate{PerMinute: 1, Burst: 2}})
	user := busobjtest.DialAs(t, e.addr, 65534, 65534)
	other := busobjtest.DialAs(t, e.addr, 1, 1)
	imp := func(c *dbus.Conn, name string) error {
		return c.Object(api.ServiceConfiguration, api.PathConfiguration).
			Call(api.InterfaceConfiguration+".Import", 0, name, goodProfile, false, true).Err
	}
	for i := range 2 {
		if err := imp(user, fmt.Sprint("u", i)); err != nil {
			t.Fatalf("import %d within the burst: %v", i, err)
		}
	}
	err := imp(user, "over")
	if !api.IsDomain(err, api.DomainRequest) || !strings.HasPrefix(api.ErrorText(err), "Too many Import calls from this user (limit 1 a minute, bursts of 2); try again in ") {
		t.Errorf("import over the burst: %v", err)
	}
	if ents, _ := os.ReadDir(e.dir); len(ents) != 2 {
		t.Errorf("%d profile files after a refused import, want the 2 accepted", len(ents))
	}
	if err := imp(other, "other"); err != nil {
		t.Errorf("another user's import: %v", err)
	}
	for i := range 4 {
		if err := imp(e.client, fmt.Sprint("root", i)); err != nil {
			t.Errorf("root import %d (root is not limited): %v", i, err)
		}
	}
}
