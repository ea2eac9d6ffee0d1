package busobj

import (
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"
)

// TestLookupDoesNotScan: finding an object, or that a path is an
// intermediate node, costs the same with 5000 objects exported below it
// (the old lookup walked every exported path on every call).
func TestLookupDoesNotScan(t *testing.T) {
	s := NewServer(nil)
	for i := range 5000 {
		if err := s.Export(dbus.ObjectPath(fmt.Sprintf("/net/openvpn/v3/sessions/s%d", i)), &Interface{Name: "a.b"}); err != nil {
			t.Fatal(err)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if obj, inner := s.lookup("/net/openvpn/v3/sessions"); obj != nil || !inner {
			t.Fatal("intermediate node not found")
		}
		if obj, _ := s.lookup("/net/openvpn/v3/sessions/s4999"); obj == nil {
			t.Fatal("object not found")
		}
	}); allocs != 0 {
		t.Errorf("lookup allocates %v times per call", allocs)
	}
	if got := len(s.children("/net/openvpn/v3")); got != 1 {
		t.Errorf("children of /net/openvpn/v3: %d", got)
	}
	for i := range 5000 {
		s.Unexport(dbus.ObjectPath(fmt.Sprintf("/net/openvpn/v3/sessions/s%d", i)))
	}
	if len(s.nodes) != 0 {
		t.Errorf("intermediate nodes left after every object was unexported: %v", s.nodes)
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n, "objects"), func(b *testing.B) {
			s := NewServer(nil)
			for i := range n {
				_ = s.Export(dbus.ObjectPath(fmt.Sprintf("/net/openvpn/v3/sessions/s%d", i)), &Interface{Name: "a.b"})
			}
			for b.Loop() {
				s.lookup("/net/openvpn/v3/sessions/s1")
			}
		})
	}
}
