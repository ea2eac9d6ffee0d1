package configmgr_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile/profiletest"
)

// TestCorpusThroughService imports every corpus profile
// (helper/openvpn/profile/testdata) with the real Import method on a
// private bus and checks the outcome each file states in its "# expect:"
// lines: imported valid (valid=true, Validate succeeds), imported invalid
// (valid=false, Validate fails with exactly the stated text), or refused
// with an error naming every stated problem. Imported profiles must also
// Fetch to a text that parses the same way and FetchJSON to their options.
func TestCorpusThroughService(t *testing.T) {
	e := setup(t)
	cases, err := profiletest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 36 {
		t.Fatalf("corpus has %d profiles", len(cases))
	}
	mgr := e.obj(api.PathConfiguration)
	counts := map[profiletest.Outcome]int{}
	for _, c := range cases {
		counts[c.Outcome]++
		t.Run(c.Name, func(t *testing.T) {
			var path dbus.ObjectPath
			err := mgr.Call(api.InterfaceConfiguration+".Import", 0, c.Name, c.Text, false, false).Store(&path)
			if !utf8.ValidString(c.Text) || strings.ContainsRune(c.Text, 0) {
				// Not a D-Bus string: the client library will not send
				// it, so the service never sees it (the parser's refusal,
				// with its line, is checked by the profile package).
				if err == nil || c.Outcome != profiletest.Refused {
					t.Fatalf("binary text: Import err %v, expectation %v", err, c.Outcome)
				}
				return
			}
			if c.Outcome == profiletest.Refused {
				if err == nil {
					t.Fatalf("imported as %s", path)
				}
				d, text, _ := api.ParseError(err)
				detail, ok := strings.CutPrefix(text, "Invalid configuration profile: ")
				if d != api.DomainRequest || !ok {
					t.Fatalf("error %q %q", d, text)
				}
				// The service joins the problems with "; " on one line.
				if strings.Contains(detail, "\n") {
					t.Errorf("multi-line error %q", detail)
				}
				for _, want := range c.Refusals {
					if !strings.Contains(detail, want) {
						t.Errorf("error does not name %q:\n%s", want, detail)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			o := e.obj(path)
			t.Cleanup(func() { _ = o.Call(api.InterfaceConfiguration+".Remove", 0).Err })
			valid := c.Outcome == profiletest.ImportsValid
			if got := prop(t, o, "valid"); got != valid {
				t.Errorf("valid = %v, want %v", got, valid)
			}
			verr := o.Call(api.InterfaceConfiguration+".Validate", 0).Err
			switch {
			case valid && verr != nil:
				t.Errorf("Validate: %v", verr)
			case !valid && api.ErrorText(verr) != c.Validate:
				t.Errorf("Validate:\n got %q\nwant %q", api.ErrorText(verr), c.Validate)
			}
			if got := prop(t, o, "valid"); got != valid {
				t.Errorf("valid after Validate = %v", got)
			}

			var text string
			if err := o.Call(api.InterfaceConfiguration+".Fetch", 0).Store(&text); err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			p, perr := profile.Parse(text)
			// good/ files parse (a legacy server-locked one is valid=false
			// all the same); incomplete bad/ ones keep their gaps.
			if strings.HasPrefix(c.Name, "good/") != (perr == nil) {
				t.Errorf("fetched text parses with %v", perr)
			}
			if p != nil && len(p.Warnings) != len(c.Warnings) {
				t.Errorf("fetched text has %d warnings, the file %d", len(p.Warnings), len(c.Warnings))
			}

			var js string
			if err := o.Call(api.InterfaceConfiguration+".FetchJSON", 0).Store(&js); err != nil {
				t.Fatalf("FetchJSON: %v", err)
			}
			var opts map[string]any
			if err := json.Unmarshal([]byte(js), &opts); err != nil || len(opts) == 0 {
				t.Errorf("FetchJSON %q: %v", js, err)
			}
		})
	}
	for _, o := range []profiletest.Outcome{profiletest.ImportsValid, profiletest.ImportsInvalid, profiletest.Refused} {
		if counts[o] == 0 {
			t.Errorf("no corpus profile that %s", o)
		}
	}
	// Refused and binary profiles left nothing behind.
	var paths []dbus.ObjectPath
	if err := mgr.Call(api.InterfaceConfiguration+".FetchAvailableConfigs", 0).Store(&paths); err != nil || len(paths) != 0 {
		t.Errorf("left behind: %v %v", paths, err)
	}
}
