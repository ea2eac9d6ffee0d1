package backend

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// The profile's evaluation behind the registration's answer: while it
// runs, Ready and the handlers that need it (Connect, Restart, the input
// queue) wait and give up with their caller, reading no made-up input
// queue; once it ended they see its outcome, and teardown waits for it.
func TestEvaluationBehindRegistration(t *testing.T) {
	pki := testbed.PKI(t)
	text, err := pki.Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if !newInputQueue(prof, false).empty() {
		t.Fatal("variant a asks the user: it would be evaluated before the answer")
	}
	discard := slog.New(slog.DiscardHandler)
	b := &Backend{opts: Options{Logger: discard}, log: discard, prof: prof}
	started, hold := make(chan struct{}), make(chan struct{})
	b.evalHook = func() { close(started); <-hold }
	b.evaluateBehind(prof)
	<-started

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.ready(gone); !api.IsDomain(err, api.DomainClient) || api.ErrorText(err) != textNotEvaluated {
		t.Errorf("Ready during the evaluation, its caller gone: %v", err)
	}
	calls := 0
	h := b.afterEvaluation(func(*busobj.Call) ([]any, error) { calls++; return nil, nil })
	if _, err := h(&busobj.Call{Ctx: gone}); err == nil || calls != 0 {
		t.Errorf("a handler ran during the evaluation: err %v, calls %d", err, calls)
	}
	b.mu.Lock()
	inputs, prepared := b.inputs, b.prepared
	b.mu.Unlock()
	if inputs != nil || prepared != nil {
		t.Error("the input queue or the TLS configuration exists before the evaluation")
	}

	close(hold)
	if err := b.ready(context.Background()); err != nil {
		t.Errorf("Ready after the evaluation: %v", err)
	}
	if _, err := h(&busobj.Call{Ctx: context.Background()}); err != nil || calls != 1 {
		t.Errorf("the handler after the evaluation: err %v, calls %d", err, calls)
	}
	b.mu.Lock()
	inputs, prepared = b.inputs, b.prepared
	b.mu.Unlock()
	if inputs == nil || prepared == nil {
		t.Error("the evaluation left no input queue or TLS configuration")
	}
	b.waitEvaluated()
	b.stopWarm()
}
