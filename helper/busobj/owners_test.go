package busobj

import "testing"

// TestOwnerCacheOrdering: a GetNameOwner reply that may predate an owner
// change seen meanwhile is not kept, and a change seen after a kept reply
// replaces it (intercept delivers changes in bus order, see ownerCache).
func TestOwnerCacheOrdering(t *testing.T) {
	var o ownerCache
	const name = "net.openvpn.v3.log"

	// The change arrives while the lookup is on its way: its answer
	// may be the old owner and is not stored.
	gen := o.begin(name)
	o.changed(name, ":1.9")
	o.end(name, gen, ":1.5", true)
	if owner, ok := o.get(name); ok {
		t.Fatalf("a reply older than a change was cached: %q", owner)
	}

	// A change after the stored reply replaces it.
	gen = o.begin(name)
	o.end(name, gen, ":1.9", true)
	if owner, ok := o.get(name); !ok || owner != ":1.9" {
		t.Fatalf("after the lookup: %q %v", owner, ok)
	}
	o.changed(name, "")
	if owner, ok := o.get(name); !ok || owner != "" {
		t.Fatalf("after the name was released: %q %v, want a known absence", owner, ok)
	}
	o.changed(name, ":1.12")
	if owner, _ := o.get(name); owner != ":1.12" {
		t.Fatalf("after the name was taken again: %q", owner)
	}

	// Two lookups overlapping a change: the one begun after it is kept.
	const other = "net.openvpn.v3.netcfg"
	g1 := o.begin(other)
	o.changed(other, ":1.20")
	g2 := o.begin(other)
	o.end(other, g2, ":1.20", true)
	o.end(other, g1, ":1.3", true)
	if owner, _ := o.get(other); owner != ":1.20" {
		t.Fatalf("overlapping lookups: %q, want the one begun after the change", owner)
	}
	if len(o.lookups) != 0 {
		t.Errorf("lookups left behind: %v", o.lookups)
	}

	// Unanswered lookups (a timeout) store nothing; a unique name that
	// leaves is forgotten.
	g := o.begin(":1.40")
	o.end(":1.40", g, "", false)
	if _, ok := o.get(":1.40"); ok {
		t.Error("a failed lookup was cached")
	}
	g = o.begin(":1.41")
	o.end(":1.41", g, ":1.41", true)
	o.changed(":1.41", "")
	if _, ok := o.get(":1.41"); ok {
		t.Error("a unique name that left the bus stays cached")
	}
}
