package polkit

import (
	"encoding/xml"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// policyPath is the shipped action file, relative to this package.
const policyPath = "../../polkit/net.ovpn3go.policy"

type policyFile struct {
	XMLName   xml.Name       `xml:"policyconfig"`
	Vendor    string         `xml:"vendor"`
	VendorURL string         `xml:"vendor_url"`
	Actions   []policyAction `xml:"action"`
}

type policyAction struct {
	ID          string `xml:"id,attr"`
	Description string `xml:"description"`
	Message     string `xml:"message"`
	Defaults    struct {
		Any      string `xml:"allow_any"`
		Inactive string `xml:"allow_inactive"`
		Active   string `xml:"allow_active"`
	} `xml:"defaults"`
}

func parsePolicy(text string) (*policyFile, error) {
	var p policyFile
	if err := xml.Unmarshal([]byte(text), &p); err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	return &p, nil
}

func readPolicy(t *testing.T) (string, *policyFile) {
	t.Helper()
	b, err := os.ReadFile(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePolicy(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), p
}

// TestPolicyFile checks the shipped action file against the constants and
// polkit's value grammar; the root test below has polkitd itself load it.
func TestPolicyFile(t *testing.T) {
	text, p := readPolicy(t)
	if !strings.Contains(text, `<!DOCTYPE policyconfig PUBLIC "-//freedesktop//DTD PolicyKit Policy Configuration 1.0//EN"`) {
		t.Error("policy file lacks the policyconfig DOCTYPE")
	}
	if p.Vendor == "" {
		t.Error("policy file has no vendor")
	}
	var ids []string
	valid := []string{"no", "yes", "auth_self", "auth_admin", "auth_self_keep", "auth_admin_keep"}
	for _, a := range p.Actions {
		ids = append(ids, a.ID)
		if strings.TrimSpace(a.Description) == "" || strings.TrimSpace(a.Message) == "" {
			t.Errorf("%s: description and message must not be empty", a.ID)
		}
		for what, v := range map[string]string{"allow_any": a.Defaults.Any,
			"allow_inactive": a.Defaults.Inactive, "allow_active": a.Defaults.Active} {
			if !slices.Contains(valid, v) {
				t.Errorf("%s: %s = %q is not a polkit implicit authorization", a.ID, what, v)
			}
		}
		if err := validate(":1.1", a.ID); err != nil {
			t.Errorf("action id: %v", err)
		}
	}
	if !slices.Equal(ids, Actions()) {
		t.Errorf("policy file actions %q, constants %q", ids, Actions())
	}
	// Auto-connect at login runs without a prompt only if the session
	// action is plainly allowed for active local sessions.
	for _, a := range p.Actions {
		if a.ID == ActionSessionControlOwn && (a.Defaults.Active != "yes" || a.Defaults.Inactive != "yes") {
			t.Errorf("%s must be allow_active/allow_inactive yes, got %q/%q", a.ID, a.Defaults.Active, a.Defaults.Inactive)
		}
		// Everything that reaches beyond the caller's own things needs an admin.
		if a.ID != ActionSessionControlOwn && a.ID != ActionProfileManageOwn {
			for _, v := range []string{a.Defaults.Any, a.Defaults.Inactive, a.Defaults.Active} {
				if !strings.HasPrefix(v, "auth_admin") {
					t.Errorf("%s: default %q, want auth_admin*", a.ID, v)
				}
			}
		}
	}
}

func TestCheckRejectsBadArguments(t *testing.T) {
	a := New(nil) // never reaches the bus
	for _, tc := range []struct{ bus, action string }{
		{"", ActionSessionControlOwn},
		{":", ActionSessionControlOwn},
		{"net.openvpn.v3.sessions", ActionSessionControlOwn}, // well-known names can change owner
		{":1.5", ""},
		{":1.5", "net.ovpn3go.x\x00y"},
		{":1.5", "net.ovpn3go/../x"},
		{":1.5", strings.Repeat("a", 256)},
	} {
		if _, err := a.Check(t.Context(), tc.bus, tc.action, false); err == nil {
			t.Errorf("Check(%q, %q) accepted bad arguments", tc.bus, tc.action)
		}
	}
}

func TestReplyError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		name string
	}{
		{fmt.Errorf("x: %w", ErrInteractionRequired), ErrNameInteractiveAuthorizationRequired},
		{fmt.Errorf("x: %w", ErrNotAuthorized), ErrNameAccessDenied},
		{fmt.Errorf("x: %w", ErrNoAuthority), ErrNameAccessDenied},
		{fmt.Errorf("bus broke"), ErrNameAccessDenied},
	} {
		e := ReplyError(tc.err)
		if e.Name != tc.name || len(e.Body) != 1 || e.Body[0] != tc.err.Error() {
			t.Errorf("ReplyError(%v) = %s %v, want %s", tc.err, e.Name, e.Body, tc.name)
		}
	}
}
