package polkit

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
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
		if a.ID != ActionSessionControlOwn {
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
	if ReplyError(nil) != nil {
		t.Error("ReplyError(nil) is not nil")
	}
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

// contentModels are the element rules of polkit's policyconfig-1.dtd
// (/usr/share/polkit-1/policyconfig-1.dtd), as regular expressions over
// the space-terminated names of an element's children.
var contentModels = map[string]*regexp.Regexp{
	"policyconfig": regexp.MustCompile(`^(vendor )?(vendor_url )?(icon_name )?(action )+$`),
	"action":       regexp.MustCompile(`^(vendor )?(vendor_url )?(description )+(message )+(icon_name )?defaults (annotate )*$`),
	"defaults":     regexp.MustCompile(`^((allow_any|allow_inactive|allow_active) )*$`),
}

// TestPolicyFileFollowsDTD checks element nesting and order against the
// DTD (no validating XML parser is at hand).
func TestPolicyFileFollowsDTD(t *testing.T) {
	text, _ := readPolicy(t)
	dec := xml.NewDecoder(strings.NewReader(text))
	type open struct {
		name     string
		children strings.Builder
	}
	var stack []*open
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(stack) > 0 {
				stack[len(stack)-1].children.WriteString(tok.Name.Local + " ")
			} else if tok.Name.Local != "policyconfig" {
				t.Fatalf("root element %q, want policyconfig", tok.Name.Local)
			}
			stack = append(stack, &open{name: tok.Name.Local})
		case xml.EndElement:
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			children := top.children.String()
			if re, ok := contentModels[top.name]; ok {
				if !re.MatchString(children) {
					t.Errorf("<%s> children %q do not match the DTD", top.name, children)
				}
			} else if children != "" {
				t.Errorf("<%s> must hold text only, has %q", top.name, children)
			}
		}
	}
}
