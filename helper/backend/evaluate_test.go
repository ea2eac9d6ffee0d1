package backend

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
)

// The profile's evaluation behind the registration's answer: while it
// runs, Ready answers from the input queue known at registration, and the
// handlers that use what it prepares (Connect, Restart) wait and give up
// with their caller; once it ended they run, with its TLS configuration,
// and the queue made at registration stays.
func TestEvaluationBehindRegistration(t *testing.T) {
	prof := variantA(t)
	if !newInputQueue(prof, false).empty() {
		t.Fatal("variant a asks the user: it would be evaluated before the answer")
	}
	discard := slog.New(slog.DiscardHandler)
	b := &Backend{opts: Options{Logger: discard}, log: discard, prof: prof, inputs: newInputQueue(prof, false)}
	queue := b.inputs
	started, hold := make(chan struct{}), make(chan struct{})
	b.evalHook = func() { close(started); <-hold }
	b.evaluateBehind(prof)
	<-started

	if err := b.ready(); err != nil {
		t.Errorf("Ready during the evaluation: %v", err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	h := b.afterEvaluation(func(*busobj.Call) ([]any, error) { calls++; return nil, nil })
	if _, err := h(&busobj.Call{Ctx: gone}); !api.IsDomain(err, api.DomainClient) || api.ErrorText(err) != textNotEvaluated || calls != 0 {
		t.Errorf("a handler during the evaluation, its caller gone: err %v, calls %d", err, calls)
	}
	b.mu.Lock()
	prepared := b.prepared
	b.mu.Unlock()
	if prepared != nil {
		t.Error("a TLS configuration exists before the evaluation")
	}

	close(hold)
	if _, err := h(&busobj.Call{Ctx: context.Background()}); err != nil || calls != 1 {
		t.Errorf("the handler after the evaluation: err %v, calls %d", err, calls)
	}
	b.mu.Lock()
	inputs, prepared := b.inputs, b.prepared
	b.mu.Unlock()
	if prepared == nil {
		t.Error("the evaluation left no TLS configuration")
	}
	if inputs != queue {
		t.Error("the evaluation replaced the input queue made at registration")
	}
	b.waitEvaluated()
	b.stopWarm()
}
