package configmgr

import "sync"

// HoldUseWrites makes the writes of backends' uses to profile files wait
// until release is called; each write that begins waiting is reported on
// held.
func (s *Service) HoldUseWrites(held chan<- struct{}) (release func()) {
	hold := make(chan struct{})
	s.mu.Lock()
	s.useHook = func() {
		held <- struct{}{}
		<-hold
	}
	s.mu.Unlock()
	return sync.OnceFunc(func() { close(hold) })
}
