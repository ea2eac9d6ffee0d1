package engine

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestAuthFailedHandling(t *testing.T) {
	newA := func() *attempt {
		c := &Client{log: slog.New(slog.DiscardHandler), events: nopEvents{}}
		c.sess.init()
		return &attempt{c: c, log: c.log}
	}
	var re *retryError
	var fe *fatalError

	a := newA()
	a.c.sess.setToken("tokuser", "SESS_ID_x")
	a.sentToken = true
	if err := a.authFailed("SESSION:token expired"); !errors.As(err, &re) || re.after != 0 {
		t.Errorf("refused token: %v, want an immediate retry", err)
	}
	if u, tok := a.c.sess.authToken(); u != "" || tok != "" {
		t.Errorf("token kept after it was refused: %q %q", u, tok)
	}

	a = newA()
	if err := a.authFailed("TEMP[backoff 7,advance no]:maintenance"); !errors.As(err, &re) || re.after != 7*time.Second {
		t.Errorf("TEMP: %v, want a retry after 7s", err)
	}
	if err := a.authFailed("TEMP"); !errors.As(err, &re) || re.after != defaultTempBackoff {
		t.Errorf("TEMP without backoff: %v", err)
	}
	for _, body := range []string{"", "bad password", "SESSION:no token was sent", "CRV1:R,E:state:dXNlcg==:Code?"} {
		err := a.authFailed(body)
		if !errors.As(err, &fe) || fe.state != StateAuthFailed {
			t.Errorf("AUTH_FAILED,%s: %v, want fatal auth failure", body, err)
		}
	}
	if err := a.authFailed("CRV1:R,E:state:dXNlcg==:Code?"); err.Error() != "CRV1:R,E:state:dXNlcg==:Code?" {
		t.Errorf("CRV1 text not passed through: %q", err)
	}
}

func TestRestartFlags(t *testing.T) {
	if !restartAdvances(&restartError{nextRemote: true, err: errors.New("x")}) || restartAdvances(errors.New("x")) {
		t.Error("restartAdvances")
	}
}

func TestProvideCRResponseNeedsChallenge(t *testing.T) {
	c := &Client{}
	if err := c.ProvideCRResponse("x"); !errors.Is(err, ErrNoChallenge) {
		t.Errorf("without a challenge: %v", err)
	}
	c.sess.crPending = true
	if err := c.ProvideCRResponse("1234"); err != nil {
		t.Fatal(err)
	}
	if got := <-c.sess.crAnswer; got != "1234" {
		t.Errorf("answer %q", got)
	}
	if err := c.ProvideCRResponse("again"); !errors.Is(err, ErrNoChallenge) {
		t.Errorf("second answer to one challenge: %v", err)
	}
}
