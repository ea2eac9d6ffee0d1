package tray

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

var (
	slotUser   = Slot{api.AttentionTypeCredentials, api.AttentionGroupUserPassword, 0, "username", "Auth User name", false}
	slotPass   = Slot{api.AttentionTypeCredentials, api.AttentionGroupUserPassword, 1, "password", "Auth Password", true}
	slotOTP    = Slot{api.AttentionTypeCredentials, api.AttentionGroupChallengeStatic, 0, "static_challenge", "Enter OTP", true}
	slotOTPe   = Slot{api.AttentionTypeCredentials, api.AttentionGroupChallengeStatic, 0, "static_challenge", "Enter PIN (shown)", false}
	slotDyn    = Slot{api.AttentionTypeCredentials, api.AttentionGroupChallengeDynamic, 0, "dynamic_challenge", "Your token code?", false}
	slotPend   = Slot{api.AttentionTypeCredentials, api.AttentionGroupChallengeAuthPending, 0, "auth_pending", "Approve and type the number", true}
	slotPK     = Slot{api.AttentionTypeCredentials, api.AttentionGroupPKPassphrase, 0, "pk_passphrase", "Private key passphrase", true}
	slotPxUser = Slot{api.AttentionTypeCredentials, api.AttentionGroupHTTPProxyCreds, 0, "http_proxy_user", "HTTP proxy username", false}
	slotPxPass = Slot{api.AttentionTypeCredentials, api.AttentionGroupHTTPProxyCreds, 1, "http_proxy_pass", "HTTP proxy password", true}
)

// formLabels lists the form item labels in order.
func formLabels(o fyne.CanvasObject) []string {
	var out []string
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch w := o.(type) {
		case *widget.Form:
			for _, it := range w.Items {
				out = append(out, it.Text)
			}
		case *fyne.Container:
			for _, c := range w.Objects {
				walk(c)
			}
		}
	}
	walk(o)
	return out
}

// TestCredFormEverySlotType builds the dialog for each slot type: the
// label, masking by the echo flag, the group hint, the Remember check only
// where a slot may be stored, and the typed answers in slot order.
func TestCredFormEverySlotType(t *testing.T) {
	test.NewTempApp(t)
	cases := []struct {
		name     string
		slots    []Slot
		labels   []string
		masked   []bool
		remember bool
		hint     string
	}{
		{"user_password", []Slot{slotUser, slotPass}, []string{"Username", "Password"}, []bool{false, true}, true, "username and password"},
		{"user_password_static_challenge", []Slot{slotUser, slotPass, slotOTP}, []string{"Username", "Password", "Enter OTP"}, []bool{false, true, true}, true, "one-time code"},
		{"static_challenge_echo", []Slot{slotOTPe}, []string{"Enter PIN (shown)"}, []bool{false}, false, "one-time code"},
		{"dynamic_challenge", []Slot{slotDyn}, []string{"Your token code?"}, []bool{false}, false, "further question"},
		{"auth_pending", []Slot{slotPend}, []string{"Approve and type the number"}, []bool{true}, false, "further question"},
		{"pk_passphrase", []Slot{slotPK}, []string{"Private key passphrase"}, []bool{true}, true, "passphrase"},
		{"proxy", []Slot{slotPxUser, slotPxPass}, []string{"Proxy username", "Proxy password"}, []bool{false, true}, true, "HTTP proxy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := NewCredForm("alpha", "", c.slots, nil, false)
			w := test.NewTempWindow(t, f.Content)
			if got := formLabels(f.Content); strings.Join(got, "|") != strings.Join(c.labels, "|") {
				t.Errorf("labels %q, want %q", got, c.labels)
			}
			for i, e := range f.Entries {
				if e.Password != c.masked[i] {
					t.Errorf("entry %d masked=%v, want %v", i, e.Password, c.masked[i])
				}
			}
			if (f.Remember != nil) != c.remember {
				t.Errorf("remember check present=%v, want %v", f.Remember != nil, c.remember)
			}
			markup := test.RenderObjectToMarkup(f.Content)
			if !strings.Contains(markup, c.hint) || !strings.Contains(markup, "Sign in to alpha") {
				t.Errorf("hint %q or title missing:\n%s", c.hint, markup)
			}
			var want []string
			for i, e := range f.Entries {
				w.Canvas().Focus(e)
				v := "answer" + string(rune('0'+i))
				test.Type(e, v)
				want = append(want, v)
			}
			for i, e := range f.Entries {
				if c.masked[i] && strings.Contains(test.RenderObjectToMarkup(e), want[i]) {
					t.Errorf("masked entry %d shows its text", i)
				}
			}
			test.Tap(f.Submit)
			vals, _, err := f.Wait(context.Background())
			if err != nil || strings.Join(vals, ",") != strings.Join(want, ",") {
				t.Fatalf("answers %q %v, want %q", vals, err, want)
			}
		})
	}
	f := NewCredForm("alpha", "Authentication failed", []Slot{slotUser}, nil, false)
	test.Tap(f.Cancel)
	if _, _, err := f.Wait(context.Background()); !errors.Is(err, ErrCancelled) {
		t.Fatalf("cancel: %v", err)
	}
	if !strings.Contains(test.RenderObjectToMarkup(f.Content), "Authentication failed") {
		t.Error("the failure message is not shown")
	}
}

func TestStorable(t *testing.T) {
	for _, s := range []Slot{slotUser, slotPass, slotPK, slotPxUser, slotPxPass} {
		if !Storable(s) {
			t.Errorf("%s not storable", s.Name)
		}
	}
	for _, s := range []Slot{slotOTP, slotOTPe, slotDyn, slotPend, {Type: api.AttentionTypePKCS11, Group: api.AttentionGroupUserPassword, Name: "username"}} {
		if Storable(s) {
			t.Errorf("%s (%v/%v) storable", s.Name, s.Type, s.Group)
		}
	}
}

// answerWhenShown waits for the session's dialog, types the values, sets
// Remember and submits, as a person would.
func answerWhenShown(t *testing.T, c *Credentials, s dbus.ObjectPath, vals []string, remember bool) *CredForm {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Open(s) == nil {
		if time.Now().After(deadline) {
			t.Fatal("dialog not shown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f := c.Open(s)
	ui(func() {
		for i, e := range f.Entries {
			e.SetText(vals[i])
		}
		if f.Remember != nil {
			f.Remember.SetChecked(remember)
		}
		test.Tap(f.Submit)
	})
	return f
}

// TestRememberRules: remembered user/password skip the dialog; a challenge
// answer is never stored, so a static-challenge profile asks every time
// (with the remembered user/password filled in); a refused login discards
// the secret and asks again without prefill; unchecking Remember forgets.
func TestRememberRules(t *testing.T) {
	test.NewTempApp(t)
	ctx := context.Background()
	store := &memStore{}
	c := &Credentials{App: fyne.CurrentApp(), Store: store}
	p := Profile{Path: profA, Name: "alpha"}

	// 1. first connect: dialog, remember
	done := make(chan []string, 1)
	go func() { v, _ := c.Prompt(ctx, p, "/s/1", []Slot{slotUser, slotPass}); done <- v }()
	answerWhenShown(t, c, "/s/1", []string{"alice", "pw1"}, true)
	if v := <-done; strings.Join(v, ",") != "alice,pw1" {
		t.Fatalf("answers %v", v)
	}
	if got := store.slots(); len(got) != 2 || got[string(profA)+"|password"] != "pw1" {
		t.Fatalf("stored %v", got)
	}
	// 2. again: no dialog
	v, err := c.Prompt(ctx, p, "/s/2", []Slot{slotUser, slotPass})
	if err != nil || strings.Join(v, ",") != "alice,pw1" {
		t.Fatalf("remembered answers %v %v", v, err)
	}
	// 3. static challenge: dialog every time, OTP never stored
	for i, otp := range []string{"111111", "222222"} {
		go func() { v, _ := c.Prompt(ctx, p, "/s/3", []Slot{slotUser, slotPass, slotOTP}); done <- v }()
		f := func() *CredForm {
			deadline := time.Now().Add(10 * time.Second)
			for c.Open("/s/3") == nil && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			return c.Open("/s/3")
		}()
		if f == nil {
			t.Fatalf("round %d: no dialog for the OTP", i)
		}
		ui(func() {
			if f.Entries[0].Text != "alice" || f.Entries[1].Text != "pw1" || f.Entries[2].Text != "" {
				t.Errorf("prefill %q %q %q", f.Entries[0].Text, f.Entries[1].Text, f.Entries[2].Text)
			}
			if !f.Remember.Checked {
				t.Error("Remember is not pre-checked although secrets are stored")
			}
			f.Entries[2].SetText(otp)
			test.Tap(f.Submit)
		})
		if v := <-done; v[2] != otp {
			t.Fatalf("answers %v", v)
		}
		for k, val := range store.slots() {
			if strings.HasSuffix(k, "static_challenge") || val == otp {
				t.Fatalf("the challenge answer was stored: %s", k)
			}
		}
	}
	// 4. refused login: secret gone, dialog with the reason, no prefill
	if err := c.AuthFailed(ctx, profA, "Authentication failed"); err != nil {
		t.Fatal(err)
	}
	if len(store.slots()) != 0 {
		t.Fatalf("secret kept after a failed login: %v", store.slots())
	}
	go func() { v, _ := c.Prompt(ctx, p, "/s/4", []Slot{slotUser, slotPass}); done <- v }()
	deadline := time.Now().Add(10 * time.Second)
	for c.Open("/s/4") == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	f := c.Open("/s/4")
	if f == nil {
		t.Fatal("no dialog after a failed login")
	}
	ui(func() {
		if f.Entries[1].Text != "" || !strings.Contains(test.RenderObjectToMarkup(f.Content), "Authentication failed") {
			t.Error("after a failed login the dialog must ask again, say why and not offer the old password")
		}
		f.Entries[0].SetText("alice")
		f.Entries[1].SetText("pw2")
		f.Remember.SetChecked(true)
		test.Tap(f.Submit)
	})
	<-done
	if store.slots()[string(profA)+"|password"] != "pw2" {
		t.Fatal("new password not remembered")
	}
	// 5. unchecking Remember forgets
	if err := c.AuthFailed(ctx, profA, ""); err != nil {
		t.Fatal(err)
	}
	go func() { v, _ := c.Prompt(ctx, p, "/s/5", []Slot{slotUser, slotPass}); done <- v }()
	answerWhenShown(t, c, "/s/5", []string{"alice", "pw3"}, false)
	<-done
	if len(store.slots()) != 0 {
		t.Fatalf("stored without Remember: %v", store.slots())
	}
	// no keyring: always the dialog, no Remember check
	c2 := &Credentials{App: fyne.CurrentApp()}
	go func() { v, _ := c2.Prompt(ctx, p, "/s/6", []Slot{slotPK}); done <- v }()
	f = answerWhenShown(t, c2, "/s/6", []string{"pass"}, false)
	<-done
	if f.Remember != nil {
		t.Error("Remember offered without a keyring")
	}
}

// TestDialogClosesWhenAnsweredElsewhere: the open dialog ends with
// ErrAnsweredElsewhere once the queue no longer lists its slots, and stays
// while they are pending.
func TestDialogClosesWhenAnsweredElsewhere(t *testing.T) {
	test.NewTempApp(t)
	c := &Credentials{App: fyne.CurrentApp()}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Prompt(context.Background(), Profile{Path: profA, Name: "alpha"}, "/s/1", []Slot{slotUser, slotPass})
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.Open("/s/1") == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c.AnsweredElsewhere("/s/1", []Slot{slotPass}) {
		t.Fatal("closed while a slot is still pending")
	}
	if !c.AnsweredElsewhere("/s/1", nil) {
		t.Fatal("not closed when the queue is empty")
	}
	if err := <-errc; !errors.Is(err, ErrAnsweredElsewhere) {
		t.Fatalf("prompt returned %v", err)
	}
	if c.Open("/s/1") != nil {
		t.Fatal("dialog still registered")
	}
}
