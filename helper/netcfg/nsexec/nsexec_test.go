package nsexec_test

import (
	"errors"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
)

func TestRunSwitchesAndReturns(t *testing.T) {
	ns := nstest.New(t, "nsx")
	var inside netns.NsHandle
	err := nsexec.Run(ns.Handle, func() (err error) {
		inside, err = netns.Get()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(ns.Handle) {
		t.Errorf("fn ran in %v, want %v", inside, ns.Handle)
	}
	var outside netns.NsHandle
	if err := nsexec.Run(netns.None(), func() (err error) { outside, err = netns.Get(); return err }); err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	if outside.Equal(ns.Handle) {
		t.Error("a thread was left in the test namespace")
	}
	boom := errors.New("boom")
	if err := nsexec.Run(ns.Handle, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want fn's error", err)
	}
}
