// Package nsexec runs a function with the calling goroutine's OS thread
// switched into another network namespace.
//
// A Go program's goroutines migrate between OS threads, and a thread's
// network namespace is per thread, so switching must happen on a locked
// thread that is switched back before anyone else can use it. When the
// switch back fails the thread is left locked: Go then terminates it when
// its goroutine ends, so no goroutine ever runs in a foreign namespace by
// accident.
package nsexec

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Run calls fn on a dedicated OS thread that is in namespace ns for the
// duration of the call, and returns fn's error. An ns that is not open
// (netns.None()) runs fn in the namespace the process's threads normally
// use.
func Run(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine owns the locked thread; if it cannot switch back it
	// returns still locked and the runtime discards the thread.
	go func() {
		runtime.LockOSThread()
		if !ns.IsOpen() {
			defer runtime.UnlockOSThread()
			errc <- fn()
			return
		}
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %v: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- fmt.Errorf("return from network namespace %v: %w (after: %v)", ns, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
