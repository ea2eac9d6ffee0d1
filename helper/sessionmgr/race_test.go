package sessionmgr

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// restartWaiting puts a session into m as the backend's exit leaves it
// with automatic-restart: no backend, a restart pending.
func restartWaiting(m *Manager) *session {
	s := &session{
		path: api.NewSessionPath(), token: api.NewSessionToken(), configPath: testConfigRestart,
		created: time.Now(), gone: make(chan struct{}), busGone: make(chan struct{}),
		autoRestart: true, restarts: 1, restartWait: make(chan struct{}),
	}
	m.mu.Lock()
	m.sessions[s.path] = s
	m.mu.Unlock()
	m.wg.Add(1)
	go m.restartLater(s)
	return s
}

// Disconnect and Close (helper shutdown) both abandon a pending automatic
// restart; racing, they must not close its channel twice (a panic) nor
// announce the session's end twice.
func TestDisconnectRacesCloseDuringRestartWait(t *testing.T) {
	addr := startBus(t)
	conn := dial(t, addr)
	launcher := fakeLauncher(t, "exit", addr)
	for i := range 200 {
		m, err := New(Options{Conn: conn, Profiles: allowProfiles{}, Launcher: launcher,
			Logs: newFakeLogs(), RestartDelay: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		s := restartWaiting(m)
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_ = m.Disconnect(s)
		}()
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := m.Close(ctx); err != nil {
				t.Errorf("round %d: Close: %v", i, err)
			}
		}()
		close(start)
		wg.Wait()
		if m.session(s.path) != nil {
			t.Fatalf("round %d: session kept", i)
		}
		if !m.isGone(s) {
			t.Fatalf("round %d: session not marked gone", i)
		}
	}
}

// Re-creating the log forwards of a restarted session reads the old
// session's subscriptions while LogForward and ACL changes edit them: under
// -race this fails if the map is read without its lock.
func TestRecreateForwardsRacesLogForward(t *testing.T) {
	logs := newFakeLogs()
	m := &Manager{logs: logs, callTO: time.Second, log: slog.New(slog.DiscardHandler)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	defer m.cancel()
	prev := &session{path: api.NewSessionPath(), gone: make(chan struct{}), owner: 1000, restrictLogAccess: true}
	next := &session{path: prev.path, gone: make(chan struct{}), owner: 1000}
	var wg sync.WaitGroup
	wg.Add(2)
	written := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(written)
		for i := range 2000 {
			sender := fmt.Sprintf(":1.%d", i%7)
			if err := m.LogForward(context.Background(), prev, sender, 1000, i%3 != 0); err != nil {
				t.Errorf("LogForward: %v", err)
				return
			}
			if i%50 == 0 {
				m.pruneForwards(prev)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-written:
				m.recreateForwards(prev, next) // the last subscriptions
				return
			default:
				m.recreateForwards(prev, next)
			}
		}
	}()
	wg.Wait()
	next.mu.Lock()
	n := len(next.forwards)
	next.mu.Unlock()
	if n == 0 {
		t.Error("no forward re-created")
	}
}
