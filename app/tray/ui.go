package tray

import (
	"sync"

	"fyne.io/fyne/v2"
)

// uiMu serialises the closures this package runs on the Fyne thread. In
// the app they all run on that one thread, so it is never contended; under
// the headless test driver fyne.Do runs closures in the calling goroutine,
// and tests that touch widgets take the same lock (see ui_test.go), which
// keeps `go test -race` meaningful.
var uiMu sync.Mutex

// onUI runs f on the Fyne thread without waiting.
func onUI(f func()) {
	fyne.Do(func() {
		uiMu.Lock()
		defer uiMu.Unlock()
		f()
	})
}

// onUIWait runs f on the Fyne thread and waits for it.
func onUIWait(f func()) {
	fyne.DoAndWait(func() {
		uiMu.Lock()
		defer uiMu.Unlock()
		f()
	})
}
