package engine

import (
	"context"
	"net"
	"testing"
)

func TestNormalizeProto(t *testing.T) {
	for in, want := range map[string]string{"": "udp", "udp": "udp", "UDP6": "udp6", "tcp-client": "tcp", "tcp4-client": "tcp4", "tcp6": "tcp6"} {
		if got, err := normalizeProto(in); err != nil || got != want {
			t.Errorf("normalizeProto(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp-server", "sctp", "udp5"} {
		if _, err := normalizeProto(bad); err == nil {
			t.Errorf("normalizeProto(%q) accepted", bad)
		}
	}
}

func TestResolveEndpoints(t *testing.T) {
	eps, err := resolveEndpoints(context.Background(), net.DefaultResolver, "127.0.0.1", "", "udp")
	if err != nil || len(eps) != 1 || eps[0].addr != "127.0.0.1:1194" || eps[0].String() != "127.0.0.1:1194/udp" {
		t.Fatalf("%+v %v", eps, err)
	}
	if _, err := resolveEndpoints(context.Background(), net.DefaultResolver, "127.0.0.1", "1194", "udp6"); err == nil {
		t.Error("IPv4 literal accepted for udp6")
	}
}
