package netcfg

import (
	"encoding/base64"
	"encoding/binary"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco/dcotest"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

func sockaddrIn(ip [4]byte, port uint16) string {
	b := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return base64.StdEncoding.EncodeToString(b)
}

// EnableDCO and the /dco object: without the module EnableDCO is refused
// naming why; with a (recording) module every method checks its arguments
// before the kernel sees them, only the device's creator and root may
// call, and Destroy deletes the DCO device.
func TestEnableDCOAndDCOObject(t *testing.T) {
	f := newFixtureOn(t, "ncdco", busobjtest.StartBus(t))
	uid, gid := testenv.EnsureBackendUser(t)
	be := busobjtest.DialAs(t, f.bus, uid, gid)
	f.svc.SetBackends(func(c *busobj.Call) bool { return c.Sender == be.Names()[0] })
	nc := api.InterfaceNetCfg
	mgr := be.Object(api.ServiceNetCfg, api.PathNetCfg)
	var devPath dbus.ObjectPath
	if err := mgr.Call(nc+".CreateVirtualInterface", 0, "dcotest").Store(&devPath); err != nil {
		t.Fatal(err)
	}
	dev := be.Object(api.ServiceNetCfg, devPath)
	errHas := func(what string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", what, err, want)
		}
	}

	// This kernel has no ovpn module (TestKernelDCO skips for that).
	if ok, _ := dco.Available(f.ns.Handle); !ok {
		var p dbus.ObjectPath
		errHas("EnableDCO without the module", dev.Call(nc+".EnableDCO", 0, "ovpnt0").Store(&p), "DCO not available")
		if f.svcExported(devPath + "/dco") {
			t.Fatal("a /dco object without the module")
		}
	}

	rk := &dcotest.Kernel{}
	f.svc.mu.Lock()
	f.svc.openDCO = func(netns.NsHandle) (DCOKernel, error) { return rk, nil }
	f.svc.mu.Unlock()
	errHas("EnableDCO with a bad name", dev.Call(nc+".EnableDCO", 0, "bad/name").Err, "Invalid device name")
	errHas("EnableDCO with a too long name", dev.Call(nc+".EnableDCO", 0, "abcdefghijklmnop").Err, "Invalid device name")

	// root's device: the backend may not enable DCO on it
	var rootDev dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).Call(nc+".CreateVirtualInterface", 0, "rootdev").Store(&rootDev); err != nil {
		t.Fatal(err)
	}
	if err := be.Object(api.ServiceNetCfg, rootDev).Call(nc+".EnableDCO", 0, "ovpnt1").Err; err == nil {
		t.Error("a backend enabled DCO on root's device")
	}

	var dcoPath dbus.ObjectPath
	if err := dev.Call(nc+".EnableDCO", 0, "ovpnt0").Store(&dcoPath); err != nil {
		t.Fatal(err)
	}
	if dcoPath != devPath+"/dco" {
		t.Fatalf("EnableDCO returned %s, want %s/dco", dcoPath, devPath)
	}
	errHas("EnableDCO twice", dev.Call(nc+".EnableDCO", 0, "ovpnt2").Err, "already enabled")
	obj := be.Object(api.ServiceNetCfg, dcoPath)

	// The transport socket the backend hands over.
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	sf, err := uc.File()
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	fd := dbus.UnixFD(sf.Fd())
	sa := sockaddrIn([4]byte{198, 18, 0, 1}, 1194)
	errHas("NewPeer with a wrong salen", obj.Call(nc+".NewPeer", 0, uint32(7), sa, uint32(28), "10.8.0.1", "", fd).Err, "Sockaddr size mismatching")
	errHas("NewPeer with a bad sockaddr", obj.Call(nc+".NewPeer", 0, uint32(7), "%%%", uint32(16), "", "", fd).Err, "not base64")
	errHas("NewPeer with an IPv6 vpn4", obj.Call(nc+".NewPeer", 0, uint32(7), sa, uint32(16), "fd00::1", "", fd).Err, "vpn4")
	errHas("NewPeer with a huge peer_id", obj.Call(nc+".NewPeer", 0, uint32(1<<24), sa, uint32(16), "", "", fd).Err, "out of range")
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	errHas("NewPeer with a pipe", obj.Call(nc+".NewPeer", 0, uint32(7), sa, uint32(16), "", "", dbus.UnixFD(pipeR.Fd())).Err, "not a socket")
	errHas("SwapKeys before NewPeer", obj.Call(nc+".SwapKeys", 0, uint32(7)).Err, "No peer 7")
	if len(rk.Calls()) != 1 { // only "create"
		t.Fatalf("refused calls reached the kernel: %q", rk.Calls())
	}

	if err := obj.Call(nc+".NewPeer", 0, uint32(7), sa, uint32(16), "10.8.0.1", "fd00::1", fd).Err; err != nil {
		t.Fatalf("NewPeer: %v", err)
	}
	errHas("a second NewPeer", obj.Call(nc+".NewPeer", 0, uint32(8), sa, uint32(16), "", "", fd).Err, "already has peer 7")

	key := dco.KeyConf{PeerID: 7, KeyID: 1, Cipher: dco.CipherAESGCM,
		Encrypt: dco.KeyDir{Key: make([]byte, 32), NonceTail: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Decrypt: dco.KeyDir{Key: make([]byte, 32), NonceTail: [8]byte{8, 7, 6, 5, 4, 3, 2, 1}}}
	key.Encrypt.Key[0], key.Decrypt.Key[31] = 0xAA, 0xBB
	kc := base64.StdEncoding.EncodeToString(dco.MarshalKeyConfig(key))
	errHas("NewKey in slot 2", obj.Call(nc+".NewKey", 0, uint32(2), kc).Err, "Invalid key slot")
	errHas("NewKey not base64", obj.Call(nc+".NewKey", 0, uint32(1), "!!").Err, "not base64")
	errHas("NewKey truncated", obj.Call(nc+".NewKey", 0, uint32(1), base64.StdEncoding.EncodeToString(dco.MarshalKeyConfig(key)[:20])).Err, "Invalid key config")
	wrongPeer := key
	wrongPeer.PeerID = 9
	errHas("NewKey for another peer", obj.Call(nc+".NewKey", 0, uint32(1), base64.StdEncoding.EncodeToString(dco.MarshalKeyConfig(wrongPeer))).Err, "No peer 9")
	if err := obj.Call(nc+".NewKey", 0, uint32(1), kc).Err; err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	errHas("SetPeer timeout < interval", obj.Call(nc+".SetPeer", 0, uint32(7), uint32(10), uint32(5)).Err, "shorter than the interval")
	if err := obj.Call(nc+".SetPeer", 0, uint32(7), uint32(10), uint32(60)).Err; err != nil {
		t.Fatalf("SetPeer: %v", err)
	}
	if err := obj.Call(nc+".SwapKeys", 0, uint32(7)).Err; err != nil {
		t.Fatalf("SwapKeys: %v", err)
	}
	errHas("DelKey slot 3", obj.Call(nc+".DelKey", 0, uint32(7), uint32(3)).Err, "Invalid key slot")
	errHas("DelKey of another peer", obj.Call(nc+".DelKey", 0, uint32(8), uint32(1)).Err, "No peer 8")
	if err := obj.Call(nc+".DelKey", 0, uint32(7), uint32(1)).Err; err != nil {
		t.Fatalf("DelKey: %v", err)
	}
	var st map[string]int64
	if err := obj.Call(nc+".GetPeerStats", 0, uint32(7)).Store(&st); err != nil {
		t.Fatalf("GetPeerStats: %v", err)
	}
	if st["TUN_PACKETS_OUT"] != 3 || st["TUN_PACKETS_IN"] != 4 || st["BYTES_IN"] != 500 || st["BYTES_OUT"] != 600 {
		t.Errorf("GetPeerStats: %v", st)
	}
	if err := dev.Call(nc+".Destroy", 0).Err; err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create ovpnt0",
		"new-peer 42 id=7 remote=198.18.0.1:1194 vpn4=10.8.0.1 vpn6=fd00::1",
		"new-key 42 peer=7 slot=1 key=1 alg=1",
		"keepalive 42 id=7 10/60",
		"swap 42 id=7",
		"del-key 42 id=7 slot=1",
		"stats 42 id=7",
		"delete-device 42",
	}
	if got := rk.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("kernel calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if keys := rk.Keys(); len(keys) == 1 {
		k := keys[0]
		if k.Encrypt.NonceTail != key.Encrypt.NonceTail || k.Decrypt.NonceTail != key.Decrypt.NonceTail {
			t.Error("nonce tails changed on the way")
		}
	}
	if !rk.Closed() || f.svcExported(dcoPath) {
		t.Error("Destroy left the DCO object or its netlink sockets")
	}

	// Only the creator (and root) may use a /dco object: root's is not
	// the backend's.
	rk2 := &dcotest.Kernel{}
	f.svc.mu.Lock()
	f.svc.openDCO = func(netns.NsHandle) (DCOKernel, error) { return rk2, nil }
	f.svc.mu.Unlock()
	var rootDCO dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, rootDev).Call(nc+".EnableDCO", 0, "ovpnt3").Store(&rootDCO); err != nil {
		t.Fatalf("root's EnableDCO: %v", err)
	}
	theirs := be.Object(api.ServiceNetCfg, rootDCO)
	for _, call := range []*dbus.Call{
		theirs.Call(nc+".NewPeer", 0, uint32(7), sa, uint32(16), "", "", fd),
		theirs.Call(nc+".NewKey", 0, uint32(0), kc),
		theirs.Call(nc+".SwapKeys", 0, uint32(7)),
		theirs.Call(nc+".SetPeer", 0, uint32(7), uint32(10), uint32(60)),
		theirs.Call(nc+".DelKey", 0, uint32(7), uint32(1)),
		theirs.Call(nc+".GetPeerStats", 0, uint32(7)),
	} {
		if err := call.Err; err == nil || !strings.Contains(err.Error(), "Authorization failed") && !api.IsErrorName(err, api.ErrNameAccessDenied) {
			t.Errorf("%s on root's /dco by a backend: %v, want refused", call.Method, err)
		}
	}
	if got := rk2.Calls(); len(got) != 1 {
		t.Errorf("refused calls reached the kernel: %q", got)
	}
}

func (f *fixture) svcExported(p dbus.ObjectPath) bool {
	srv := f.svc.server()
	return srv != nil && srv.Exported(p)
}
