package tray

import (
	"context"
	"errors"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Storable reports whether a slot's answer may be remembered: usernames,
// passwords and passphrases (user/password, HTTP proxy credentials, private
// key passphrase). Challenge answers — static or dynamic OTPs, pending-auth
// responses — are never stored: they are single-use.
func Storable(s Slot) bool {
	if s.Type != api.AttentionTypeCredentials {
		return false
	}
	switch s.Group {
	case api.AttentionGroupUserPassword, api.AttentionGroupHTTPProxyCreds, api.AttentionGroupPKPassphrase:
		return true
	}
	return false
}

// SecretStore keeps remembered answers per profile and slot name (the
// Secret Service in the app; a map in tests).
type SecretStore interface {
	Lookup(ctx context.Context, profile dbus.ObjectPath, slot string) (value string, found bool, err error)
	Store(ctx context.Context, profile dbus.ObjectPath, profileName, slot, value string) error
	Delete(ctx context.Context, profile dbus.ObjectPath) error
}

// ErrAnsweredElsewhere is returned by the prompter when the dialog closed
// itself because another front-end answered the slots.
var ErrAnsweredElsewhere = errors.New("answered by another front-end")

// slotLabel is the translated label of a slot: known variable names get a
// fixed label; challenges show the server's prompt text verbatim.
func slotLabel(s Slot) string {
	switch s.Name {
	case "username":
		return lang.L("Username")
	case "password":
		return lang.L("Password")
	case "pk_passphrase":
		return lang.L("Private key passphrase")
	case "http_proxy_user":
		return lang.L("Proxy username")
	case "http_proxy_pass":
		return lang.L("Proxy password")
	}
	if s.Description != "" {
		return s.Description
	}
	return s.Name
}

// groupHint is the translated sentence above the fields of a slot group.
func groupHint(g api.AttentionGroup) string {
	switch g {
	case api.AttentionGroupUserPassword:
		return lang.L("The server asks for your username and password.")
	case api.AttentionGroupHTTPProxyCreds:
		return lang.L("The HTTP proxy asks for credentials.")
	case api.AttentionGroupPKPassphrase:
		return lang.L("Your private key is protected by a passphrase.")
	case api.AttentionGroupChallengeStatic:
		return lang.L("Enter the one-time code (it is never stored).")
	case api.AttentionGroupChallengeDynamic, api.AttentionGroupChallengeAuthPending:
		return lang.L("The server asks a further question (the answer is never stored).")
	}
	return lang.L("The VPN needs more information.")
}

// CredForm is the credential dialog's content for one set of slots.
type CredForm struct {
	Slots    []Slot
	Entries  []*widget.Entry
	Remember *widget.Check // nil when no slot is storable
	Submit   *widget.Button
	Cancel   *widget.Button
	Content  fyne.CanvasObject

	once   sync.Once
	result chan credResult
}

type credResult struct {
	values   []string
	remember bool
	err      error
}

// NewCredForm builds the form: one entry per slot (masked when the slot is
// hidden), grouped with a hint per slot group, prefilled from stored,
// a "Remember" check when any slot may be stored, and a message line
// (e.g. "Authentication failed") when message is not empty.
func NewCredForm(profile, message string, slots []Slot, stored map[string]string, remember bool) *CredForm {
	f := &CredForm{Slots: slots, result: make(chan credResult, 1)}
	box := container.NewVBox()
	title := widget.NewLabelWithStyle(lang.L("Sign in to {{.Profile}}", map[string]any{"Profile": profile}), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	box.Add(title)
	if message != "" {
		m := widget.NewLabel(message)
		m.Importance = widget.DangerImportance
		m.Wrapping = fyne.TextWrapWord
		box.Add(m)
	}
	var lastGroup api.AttentionGroup
	storable := false
	for i, s := range slots {
		if i == 0 || s.Group != lastGroup {
			h := widget.NewLabel(groupHint(s.Group))
			h.Wrapping = fyne.TextWrapWord
			box.Add(h)
			lastGroup = s.Group
		}
		var e *widget.Entry
		if s.Hidden {
			e = widget.NewPasswordEntry()
		} else {
			e = widget.NewEntry()
		}
		if v, ok := stored[s.Name]; ok && Storable(s) {
			e.SetText(v)
		}
		e.OnSubmitted = func(string) { f.submit() }
		f.Entries = append(f.Entries, e)
		box.Add(widget.NewForm(widget.NewFormItem(slotLabel(s), e)))
		storable = storable || Storable(s)
	}
	if storable {
		f.Remember = widget.NewCheck(lang.L("Remember in the keyring"), nil)
		f.Remember.SetChecked(remember)
		box.Add(f.Remember)
	}
	f.Submit = widget.NewButton(lang.L("Connect"), f.submit)
	f.Submit.Importance = widget.HighImportance
	f.Cancel = widget.NewButton(lang.L("Cancel"), func() { f.finish(credResult{err: ErrCancelled}) })
	box.Add(container.NewHBox(f.Cancel, f.Submit))
	f.Content = box
	return f
}

func (f *CredForm) submit() {
	vals := make([]string, len(f.Entries))
	for i, e := range f.Entries {
		vals[i] = e.Text
	}
	f.finish(credResult{values: vals, remember: f.Remember != nil && f.Remember.Checked})
}

func (f *CredForm) finish(r credResult) { f.once.Do(func() { f.result <- r }) }

// Wait returns the answers once the person submitted, or an error.
func (f *CredForm) Wait(ctx context.Context) ([]string, bool, error) {
	select {
	case r := <-f.result:
		return r.values, r.remember, r.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// Credentials turns user-input slots into answers: remembered values when
// every slot has one and the profile's last login did not fail, else the
// dialog. It stores and discards remembered values by the rules above.
type Credentials struct {
	App   fyne.App
	Store SecretStore // nil: nothing is remembered

	mu     sync.Mutex
	failed map[dbus.ObjectPath]string // profile → why the next prompt must ask
	open   map[dbus.ObjectPath]*openForm
}

type openForm struct {
	form   *CredForm
	window fyne.Window
}

// AuthFailed discards the profile's remembered secrets: the next prompt
// shows the dialog with reason.
func (c *Credentials) AuthFailed(ctx context.Context, profile dbus.ObjectPath, reason string) error {
	c.mu.Lock()
	if c.failed == nil {
		c.failed = map[dbus.ObjectPath]string{}
	}
	c.failed[profile] = reason
	c.mu.Unlock()
	if c.Store == nil {
		return nil
	}
	return c.Store.Delete(ctx, profile)
}

// Prompt answers slots of session (started from profile).
func (c *Credentials) Prompt(ctx context.Context, profile Profile, session dbus.ObjectPath, slots []Slot) ([]string, error) {
	c.mu.Lock()
	reason, failed := c.failed[profile.Path]
	c.mu.Unlock()
	stored := map[string]string{}
	all := len(slots) > 0
	if c.Store != nil {
		for _, s := range slots {
			if !Storable(s) {
				all = false
				continue
			}
			v, ok, err := c.Store.Lookup(ctx, profile.Path, s.Name)
			if err != nil || !ok {
				all = false
				continue
			}
			stored[s.Name] = v
		}
	} else {
		all = false
	}
	if all && !failed {
		vals := make([]string, len(slots))
		for i, s := range slots {
			vals[i] = stored[s.Name]
		}
		return vals, nil
	}
	if failed {
		stored = map[string]string{} // a rejected secret is not offered again
	}
	form := NewCredForm(profile.Name, reason, slots, stored, len(stored) > 0)
	if c.Store == nil && form.Remember != nil {
		form.Remember.Hide() // nowhere to remember anything
		form.Remember = nil
	}
	c.show(session, form, profile.Name)
	defer c.close(session, form)
	vals, remember, err := form.Wait(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	delete(c.failed, profile.Path)
	c.mu.Unlock()
	if c.Store != nil && form.Remember != nil {
		if remember {
			for i, s := range slots {
				if Storable(s) && vals[i] != "" {
					if err := c.Store.Store(ctx, profile.Path, profile.Name, s.Name, vals[i]); err != nil {
						return vals, nil // connecting matters more than remembering; the error shows in the log
					}
				}
			}
		} else {
			_ = c.Store.Delete(ctx, profile.Path)
		}
	}
	return vals, nil
}

func (c *Credentials) show(session dbus.ObjectPath, form *CredForm, profile string) {
	onUIWait(func() {
		w := c.App.NewWindow(lang.L("Sign in to {{.Profile}}", map[string]any{"Profile": profile}))
		w.SetContent(form.Content)
		w.Resize(fyne.NewSize(420, 10))
		w.CenterOnScreen()
		w.SetCloseIntercept(func() { form.finish(credResult{err: ErrCancelled}) })
		c.mu.Lock()
		if c.open == nil {
			c.open = map[dbus.ObjectPath]*openForm{}
		}
		c.open[session] = &openForm{form: form, window: w}
		c.mu.Unlock()
		w.Show()
		if len(form.Entries) > 0 {
			w.Canvas().Focus(form.Entries[0])
		}
	})
}

func (c *Credentials) close(session dbus.ObjectPath, form *CredForm) {
	c.mu.Lock()
	o := c.open[session]
	if o != nil && o.form == form {
		delete(c.open, session)
	}
	c.mu.Unlock()
	if o != nil && o.form == form {
		onUI(o.window.Close)
	}
}

// Open returns the form shown for session, if any.
func (c *Credentials) Open(session dbus.ObjectPath) *CredForm {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.open[session]; o != nil {
		return o.form
	}
	return nil
}

// AnsweredElsewhere closes the session's dialog when none of its slots is
// still pending: pending is the queue as the helper lists it now.
func (c *Credentials) AnsweredElsewhere(session dbus.ObjectPath, pending []Slot) bool {
	f := c.Open(session)
	if f == nil {
		return false
	}
	for _, s := range f.Slots {
		for _, p := range pending {
			if p.Type == s.Type && p.Group == s.Group && p.ID == s.ID {
				return false
			}
		}
	}
	f.finish(credResult{err: ErrAnsweredElsewhere})
	return true
}
