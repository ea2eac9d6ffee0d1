package netcfg

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// TestEstablishVnetHdr: a device whose vnet_hdr property the backend set
// (netconf.Config.VnetHdr) is created with IFF_VNET_HDR, so the backend
// can enable the TUN offloads on the fd it gets; without it, not.
func TestEstablishVnetHdr(t *testing.T) {
	f := newFixture(t, "ncvnet")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range []bool{true, false} {
		cfg := testCfg
		cfg.VnetHdr = want
		tun, path, _, err := f.client.Establish(ctx, []string{"vnet", "plain"}[i], cfg)
		if err != nil {
			t.Fatalf("Establish: %v", err)
		}
		checkProp(t, f.conn.Object(api.ServiceNetCfg, path), "vnet_hdr", want)
		if got := tunFlags(t, tun)&unix.IFF_VNET_HDR != 0; got != want {
			t.Errorf("vnet_hdr %v: device has IFF_VNET_HDR %v", want, got)
		}
		tun.Close()
		if err := f.client.Destroy(ctx, path); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
	}
	f.waitClean(t)
}

// tunFlags reads the flags of the TUN device behind f (TUNGETIFF).
func tunFlags(t *testing.T, f *os.File) uint16 {
	t.Helper()
	ifr, err := unix.NewIfreq("")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr) }); err != nil || ioErr != nil {
		t.Fatalf("TUNGETIFF: %v %v", err, ioErr)
	}
	return ifr.Uint16()
}
