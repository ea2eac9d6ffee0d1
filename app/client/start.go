package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Prompter answers the user-input slots of a session: the CLI reads the
// terminal, the tray shows a dialog.
type Prompter interface {
	// Answer returns the value for slot. It is called once per
	// unanswered slot, in queue order; an error ends Start with it.
	Answer(ctx context.Context, s *Session, slot Slot) (string, error)
}

// FormPrompter is a Prompter that can ask for every unanswered slot of a
// round at once (a dialog with a user name and a password field). Start
// calls AnswerAll instead of Answer when the Prompter has it; it returns
// one value per slot, in the order given.
type FormPrompter interface {
	Prompter
	AnswerAll(ctx context.Context, s *Session, slots []Slot) ([]string, error)
}

// PromptFunc is a function that is a Prompter.
type PromptFunc func(ctx context.Context, s *Session, slot Slot) (string, error)

// Answer calls f.
func (f PromptFunc) Answer(ctx context.Context, s *Session, slot Slot) (string, error) {
	return f(ctx, s, slot)
}

// Action is what Start does once the session is ready.
type Action int

const (
	ActionConnect Action = iota // Connect (session-start)
	ActionResume                // Resume a paused session
	ActionRestart               // Restart the connection
)

// StartOptions tune Session.Start.
type StartOptions struct {
	// Prompter answers the session's questions; nil: a session that
	// needs input fails with ErrNeedsInput.
	Prompter Prompter
	// Action is done once the session is ready (default Connect); later
	// rounds (a dynamic challenge) always Connect.
	Action Action
	// Timeout ends the wait for CONN_CONNECTED with ErrTimeout; 0 waits
	// until ctx ends.
	Timeout time.Duration
	// Background returns right after the action, without waiting.
	Background bool
	// OnStatus sees every new status while waiting (for progress).
	OnStatus func(api.Status)
	// OnNotice sees what the person should know in between: "Incorrect
	// private key passphrase", "Empty input not allowed".
	OnNotice func(string)
	// WebAuth is called with the URL when the server asks for web
	// authentication; Start then keeps waiting for the session to
	// connect. nil: Start returns a *StartError of kind ErrWebAuth whose
	// Status.Message is the URL (what openvpn3 session-start does).
	WebAuth func(ctx context.Context, url string) error
	// Watch, if made by WatchStart on the session's Client before
	// NewTunnel, is followed instead of subscribing here (Start stops it
	// when it returns): nothing waits on match rules after NewTunnel.
	Watch *StartWatch
}

// Outcomes of Start, for errors.Is on a *StartError.
var (
	ErrAuthFailed       = errors.New("user authentication failed")
	ErrConnectionFailed = errors.New("connection failed")
	ErrConfiguration    = errors.New("configuration error")
	ErrSessionEnded     = errors.New("session ended")
	ErrTimeout          = errors.New("not connected in time")
	ErrWebAuth          = errors.New("web authentication required")
	ErrNeedsInput       = errors.New("the session needs input nobody here can give")
)

// StartError is why Start did not end connected: Kind is one of the Err*
// outcomes above, Status the session's last status.
type StartError struct {
	Kind   error
	Status api.Status
	Detail string // more on the cause, if any
}

func (e *StartError) Error() string {
	msg := e.Kind.Error()
	switch {
	case e.Kind == ErrWebAuth:
		return msg + ": open " + e.Status.Message
	case e.Detail != "":
		msg += ": " + e.Detail
	case e.Kind == ErrAuthFailed || e.Kind == ErrConnectionFailed || e.Kind == ErrConfiguration:
		msg += ": " + orNoReason(e.Status.Message)
	}
	if e.Kind == ErrTimeout || e.Kind == ErrSessionEnded {
		msg += " (last status: " + e.Status.String() + ")"
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Kind }

func orNoReason(s string) string {
	if strings.TrimSpace(s) == "" {
		return "no reason given"
	}
	return s
}

// maxRounds bounds the fill-Ready-Connect-wait rounds, as openvpn3 does.
const maxRounds = 10

// statusPoll is how often Start reads the status property besides
// following the forwarded signals: the signals are the fast path, polling
// covers a caller that may not follow the log (restrict_log_access).
const statusPoll = time.Second

// failureGrace is how long Start waits, once the session has ended, for
// the forwarded status that says why.
const failureGrace = 2 * time.Second

// errNeedInput ends a round: the backend asks again (dynamic challenge,
// rejected passphrase).
var errNeedInput = errors.New("the session needs user input")

// Start is openvpn3's start_session(): up to ten rounds of filling the
// user-input queue through opts.Prompter until Ready passes, the action
// (Connect), and waiting for the outcome; a round ends early when the
// backend asks for more input (CFG_REQUIRE_USER after a dynamic challenge).
//
// nil means connected (or, with Background, connecting). Otherwise the
// error is a *StartError, an *Error of a failed call, the Prompter's error
// or ctx's. Start does not disconnect a failed session: the caller decides.
func (s *Session) Start(ctx context.Context, opts StartOptions) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	// Follow before anything happens so no status is missed (without the
	// right to the log, polling does the job). The match rules go out
	// first; LogForward, the first Ready and a first look at the status
	// follow without waiting for their answers (the bus handles one
	// connection's messages in order): one round trip before Connect.
	var (
		f                     *following
		followAdded, subAdded func() error
		destroyed             <-chan SessionManagerEvent
	)
	if w := opts.Watch; w.take(s) {
		f = &following{s: s, events: w.events, cancel: w.Stop}
		followAdded, subAdded, destroyed = w.eventsAdded, w.destroyedAdded, w.destroyed
	} else {
		f, followAdded = s.subscribeEvents(sctx)
		destroyed, subAdded = s.c.sessionManagerEvents(sctx)
	}
	defer f.stop()
	var (
		ready, forwardErr error
		stale             api.Status
		statusErr         error
		connected         bool // the Connect sent with the first Ready was taken
	)
	first := []func(){
		func() { forwardErr = f.forward(ctx) },
		func() { ready = s.Ready(ctx) },
		func() { stale, statusErr = s.Status(ctx) },
	}
	if opts.Action == ActionConnect {
		// The Connect goes with the first Ready rather than after its
		// answer: for a profile that asks nothing it saves a round trip
		// through the session manager and the backend. A backend still
		// missing input refuses it as it refuses Ready (both ask whether
		// the queue is complete), and changes nothing; the rounds below
		// then connect once the input is given, as without it.
		first = append(first, func() { connected = s.Connect(ctx) == nil })
	}
	together(first...)
	followErr, subErr := followAdded(), subAdded()
	if subErr != nil {
		return subErr
	}
	if errors.Is(statusErr, ErrObjectGone) {
		// openvpn3-linux answers NewTunnel before the session object
		// exists: wait for it, then ask again.
		if err := s.awaitObject(ctx); err != nil {
			return err
		}
		together(
			func() {
				if forwardErr != nil {
					forwardErr = f.forward(ctx)
				}
			},
			func() { ready = s.Ready(ctx) },
			func() { stale, _ = s.Status(ctx) },
		)
	}
	w := &waiter{s: s, opts: opts, destroyed: destroyed}
	if opts.Timeout > 0 {
		t := time.NewTimer(opts.Timeout)
		defer t.Stop()
		w.deadline = t.C
	}
	if followErr == nil && forwardErr == nil {
		w.events = f.events
	}
	action := opts.Action
	for round := 0; round < maxRounds; round++ {
		if round == 0 && connected {
			// The Connect sent with the first Ready was taken. The status
			// read beside it is stale if it is from before (the profile's
			// evaluation); one from after it (CONN_CONNECTING, a failure
			// already) is this round's.
			if !configPhase(stale) {
				stale = api.Status{}
			}
		} else {
			// The status before the action is stale once it returns: an
			// earlier CONN_AUTH_FAILED must not end this round. The first
			// round's Ready and status were read above.
			asked := round == 0
			changed, err := s.fillQueue(ctx, opts, asked, ready)
			if err != nil {
				return err
			}
			if !asked || changed {
				stale, _ = s.Status(ctx)
			}
			w.drain()
			if err := s.act(ctx, action); err != nil {
				if strings.Contains(ErrorText(err), "PEM_PASSWORD_FAIL") {
					// The backend asks for the passphrase again.
					notice(opts, "Incorrect private key passphrase")
					continue
				}
				return err
			}
		}
		action = ActionConnect
		if opts.Background {
			return nil
		}
		err := w.wait(ctx, stale)
		if !errors.Is(err, errNeedInput) {
			return err
		}
	}
	return &StartError{Kind: ErrNeedsInput, Status: w.last, Detail: "still asked for input after ten rounds"}
}

// configPhase says whether st is a status of the profile's evaluation,
// which comes before any Connect.
func configPhase(st api.Status) bool {
	switch st.Minor {
	case api.StatusMinorCfgOK, api.StatusMinorCfgInlineMissing, api.StatusMinorCfgRequireUser:
		return st.Major == api.StatusMajorConnection
	}
	return false
}

// together runs fns side by side and returns when all have.
func together(fns ...func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	wg.Wait()
}

func notice(opts StartOptions, msg string) {
	if opts.OnNotice != nil {
		opts.OnNotice(msg)
	}
}

func (s *Session) act(ctx context.Context, a Action) error {
	switch a {
	case ActionResume:
		return s.Resume(ctx)
	case ActionRestart:
		return s.Restart(ctx)
	}
	return s.Connect(ctx)
}

// awaitObject waits (briefly) for the session object: openvpn3-linux
// replies to NewTunnel before the object exists.
func (s *Session) awaitObject(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Status(ctx)
		if err == nil || !errors.Is(err, ErrObjectGone) || time.Now().After(deadline) {
			return nil // other errors show up in the calls that follow
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fillQueue calls Ready until it passes, answering the queued slots in
// between (up to five rounds). With asked, the first Ready was called
// already and ready is its outcome. changed says that something happened
// meanwhile (input given, web authentication) that may have changed the
// session's status.
func (s *Session) fillQueue(ctx context.Context, opts StartOptions, asked bool, ready error) (changed bool, err error) {
	for round := 0; round < 5; round++ {
		err := ready
		if round > 0 || !asked {
			err = s.Ready(ctx)
		}
		if err == nil {
			return changed, nil
		}
		if !errors.Is(err, ErrNotReady) {
			return changed, err
		}
		if strings.Contains(ErrorText(err), "Pending web authentication") {
			st, _ := s.Status(ctx)
			if opts.WebAuth == nil {
				return changed, &StartError{Kind: ErrWebAuth, Status: st}
			}
			if err := opts.WebAuth(ctx, st.Message); err != nil {
				return changed, err
			}
			return true, nil // the server goes on once the person signed in
		}
		slots, err := s.PendingInput(ctx)
		if err != nil {
			return changed, err
		}
		if len(slots) == 0 || opts.Prompter == nil {
			st, _ := s.Status(ctx)
			return changed, &StartError{Kind: ErrNeedsInput, Status: st}
		}
		values, err := answerAll(ctx, opts.Prompter, s, slots)
		if err != nil {
			return changed, err
		}
		changed = true
		for i, sl := range slots {
			if err := s.Provide(ctx, sl, values[i]); err != nil {
				if strings.Contains(ErrorText(err), "No value provided for") {
					notice(opts, "Empty input not allowed")
					continue
				}
				return changed, err
			}
		}
	}
	st, _ := s.Status(ctx)
	return changed, &StartError{Kind: ErrNeedsInput, Status: st, Detail: "still not ready after the input was given"}
}

// answerAll asks p for every slot: at once if it is a FormPrompter, else
// one by one.
func answerAll(ctx context.Context, p Prompter, s *Session, slots []Slot) ([]string, error) {
	if fp, ok := p.(FormPrompter); ok {
		values, err := fp.AnswerAll(ctx, s, slots)
		if err != nil {
			return nil, err
		}
		if len(values) != len(slots) {
			return nil, fmt.Errorf("the prompter gave %d answers for %d questions", len(values), len(slots))
		}
		return values, nil
	}
	values := make([]string, len(slots))
	for i, sl := range slots {
		v, err := p.Answer(ctx, s, sl)
		if err != nil {
			return nil, err
		}
		values[i] = v
	}
	return values, nil
}

// waiter follows one session's status across the rounds of Start.
type waiter struct {
	s         *Session
	opts      StartOptions
	events    <-chan Event
	destroyed <-chan SessionManagerEvent
	deadline  <-chan time.Time
	last      api.Status
	webURL    string // the URL WebAuth was last called with
}

// wait follows the status (forwarded signals plus polling) until it is
// connected, fails, disappears, or the deadline or ctx ends. Until the
// status differs from stale (the status before Connect) nothing ends it.
// CFG_REQUIRE_USER returns errNeedInput.
func (w *waiter) wait(ctx context.Context, stale api.Status) error {
	poll := time.NewTicker(statusPoll)
	defer poll.Stop()
	changed := false
	var handle func(st api.Status) (bool, error)
	handle = func(st api.Status) (bool, error) {
		if !changed {
			if st == stale && st.Minor != api.StatusMinorConnConnected {
				return false, nil
			}
			changed = true
		}
		if st != w.last {
			w.last = st
			if w.opts.OnStatus != nil {
				w.opts.OnStatus(st)
			}
		}
		if st.Major == api.StatusMajorSession && st.Minor == api.StatusMinorSessAuthURL {
			if w.opts.WebAuth == nil {
				return true, &StartError{Kind: ErrWebAuth, Status: st}
			}
			if st.Message != w.webURL {
				w.webURL = st.Message
				if err := w.opts.WebAuth(ctx, st.Message); err != nil {
					return true, err
				}
			}
			return false, nil
		}
		switch st.Minor {
		case api.StatusMinorCfgRequireUser:
			return true, errNeedInput
		case api.StatusMinorConnConnected:
			return true, nil
		case api.StatusMinorConnFailed:
			return true, &StartError{Kind: ErrConnectionFailed, Status: st}
		case api.StatusMinorConnAuthFailed:
			return true, &StartError{Kind: ErrAuthFailed, Status: st}
		case api.StatusMinorCfgError:
			return true, &StartError{Kind: ErrConfiguration, Status: st}
		case api.StatusMinorProcStopped, api.StatusMinorProcKilled, api.StatusMinorConnDone:
			// A polled end can overtake the forwarded failure sent just
			// before it: the reason matters more.
			if f, ok := w.awaitFailure(); ok {
				return handle(f)
			}
			return true, &StartError{Kind: ErrSessionEnded, Status: st}
		}
		return false, nil
	}
	check := func() (bool, error) {
		st, err := w.s.Status(ctx)
		switch {
		case err == nil:
			return handle(st)
		case api.IsErrorName(err, api.ErrNameUnknownMethod) || errors.Is(err, ErrObjectGone):
			// The backend ended; its last events (CONN_FAILED with the
			// reason) may still be on their way from the log service.
			if w.last.Minor == api.StatusMinorConnFailed || w.last.Minor == api.StatusMinorConnAuthFailed {
				return handle(w.last)
			}
			if f, ok := w.awaitFailure(); ok {
				return handle(f)
			}
			return true, &StartError{Kind: ErrSessionEnded, Status: w.last, Detail: "before connecting"}
		}
		return false, nil // transient: keep waiting
	}
	if done, err := check(); done {
		return err
	}
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				w.events = nil
				continue
			}
			if sc, isStatus := e.(StatusChange); isStatus {
				if done, err := handle(sc.Status); done {
					return err
				}
			}
		case ev, ok := <-w.destroyed:
			if !ok {
				w.destroyed = nil
				continue
			}
			if ev.Path == w.s.Path && ev.Type == api.SessionEventDestroyed {
				if done, err := check(); done {
					return err
				}
			}
		case <-poll.C:
			if done, err := check(); done {
				return err
			}
		case <-w.deadline:
			return &StartError{Kind: ErrTimeout, Status: w.last}
		case <-ctx.Done():
			return fmt.Errorf("interrupted (last status: %s): %w", w.last, ctx.Err())
		}
	}
}

// drain drops the events that arrived before the action: they belong to
// the previous round (a poll may have ended it before its signals came).
func (w *waiter) drain() {
	for {
		select {
		case _, ok := <-w.events:
			if !ok {
				w.events = nil
				return
			}
		default:
			return
		}
	}
}

// awaitFailure looks among the forwarded events, for failureGrace, for the
// status that says why the session failed.
func (w *waiter) awaitFailure() (api.Status, bool) {
	if w.events == nil {
		return api.Status{}, false
	}
	t := time.NewTimer(failureGrace)
	defer t.Stop()
	for {
		select {
		case e, ok := <-w.events:
			if !ok {
				w.events = nil
				return api.Status{}, false
			}
			sc, isStatus := e.(StatusChange)
			if isStatus && (sc.Status.Minor == api.StatusMinorConnFailed ||
				sc.Status.Minor == api.StatusMinorConnAuthFailed || sc.Status.Minor == api.StatusMinorCfgError) {
				return sc.Status, true
			}
		case <-t.C:
			return api.Status{}, false
		}
	}
}
