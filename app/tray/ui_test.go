package tray

// ui runs f holding the lock the package's UI closures hold, for tests
// that touch widgets while the tray's goroutines run (the headless driver
// runs fyne.Do closures in the calling goroutine).
func ui(f func()) {
	uiMu.Lock()
	defer uiMu.Unlock()
	f()
}
