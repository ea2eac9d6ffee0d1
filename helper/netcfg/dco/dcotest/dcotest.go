// Package dcotest is a stand-in for the kernel's ovpn module, for tests on
// kernels without it: it records what netcfg asks of the module, checks the
// socket it is handed, and (with a netlink handle) creates a real link per
// device so that netcfg can configure addresses and routes on it.
package dcotest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
)

// FakeIndex is the interface index of devices made without Links.
const FakeIndex = 42

// Kernel implements netcfg.DCOKernel.
type Kernel struct {
	// Links, when set, is where devices become real links (veth pairs:
	// test kernels may lack the dummy module); nil: devices exist only
	// as FakeIndex.
	Links *netlink.Handle

	mu     sync.Mutex
	calls  []string
	keys   []dco.KeyConf
	closed bool
}

func (k *Kernel) rec(format string, a ...any) error {
	k.mu.Lock()
	k.calls = append(k.calls, fmt.Sprintf(format, a...))
	k.mu.Unlock()
	return nil
}

// Calls are the calls so far, one line each ("new-peer 42 id=7 …").
func (k *Kernel) Calls() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.calls...)
}

// Keys are the keys NewKey received.
func (k *Kernel) Keys() []dco.KeyConf {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]dco.KeyConf(nil), k.keys...)
}

// Closed says whether Close was called.
func (k *Kernel) Closed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.closed
}

func (k *Kernel) CreateDevice(name string) (int, error) {
	if k.Links == nil {
		return FakeIndex, k.rec("create %s", name)
	}
	if err := k.Links.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		return 0, err
	}
	link, err := k.Links.LinkByName(name)
	if err != nil {
		return 0, err
	}
	return link.Attrs().Index, k.rec("create %s", name)
}

func (k *Kernel) DeleteDevice(i int) error {
	var err error
	if k.Links != nil {
		var link netlink.Link
		if link, err = k.Links.LinkByIndex(i); err == nil {
			err = k.Links.LinkDel(link)
		}
	}
	_ = k.rec("delete-device %d", i)
	return err
}

func (k *Kernel) NewPeer(i int, p dco.Peer) error {
	typ, err := unix.GetsockoptInt(p.Socket, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_DGRAM {
		return fmt.Errorf("socket fd %d: type %d, %v", p.Socket, typ, err)
	}
	return k.rec("new-peer %d id=%d remote=%s vpn4=%s vpn6=%s", i, p.ID, p.Remote, p.VPN4, p.VPN6)
}

func (k *Kernel) SetKeepalive(i int, id, iv, to uint32) error {
	return k.rec("keepalive %d id=%d %d/%d", i, id, iv, to)
}

func (k *Kernel) NewKey(i int, c dco.KeyConf) error {
	// A copy, as the kernel takes one: netcfg wipes its own.
	c.Encrypt.Key, c.Decrypt.Key = slices.Clone(c.Encrypt.Key), slices.Clone(c.Decrypt.Key)
	k.mu.Lock()
	k.keys = append(k.keys, c)
	k.mu.Unlock()
	return k.rec("new-key %d peer=%d slot=%d key=%d alg=%d", i, c.PeerID, c.Slot, c.KeyID, c.Cipher)
}

func (k *Kernel) SwapKeys(i int, id uint32) error { return k.rec("swap %d id=%d", i, id) }

func (k *Kernel) DelKey(i int, id uint32, slot dco.Slot) error {
	return k.rec("del-key %d id=%d slot=%d", i, id, slot)
}

// PeerStats returns fixed counters a test can look for.
func (k *Kernel) PeerStats(i int, id uint32) (dco.Stats, error) {
	return dco.Stats{PeerID: id, VPNRxPackets: 3, VPNTxPackets: 4, LinkRxBytes: 500, LinkTxBytes: 600}, k.rec("stats %d id=%d", i, id)
}

func (k *Kernel) Close() error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	return nil
}
