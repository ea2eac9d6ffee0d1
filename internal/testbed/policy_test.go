package testbed

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The test bus loads the shipped policy file itself, by <include>.
func TestBusLoadsShippedPolicy(t *testing.T) {
	b := BusDaemonFor(t)
	conf, err := os.ReadFile(b.Dir + "/bus.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := "<include>" + BusPolicyFile() + "</include>"
	if !strings.Contains(string(conf), want) {
		t.Errorf("bus.conf lacks %s:\n%s", want, conf)
	}
	if _, err := os.Stat(BusPolicyFile()); err != nil {
		t.Fatal(err)
	}
}

// requestName asks for name with busctl as uid (gid) and reports the
// bus's answer: "" when granted, else the error text.
func requestName(t *testing.T, addr string, uid, gid uint32, name string) string {
	t.Helper()
	busctl := testenv.RequireCommand(t, "busctl")
	setpriv := testenv.RequireCommand(t, "setpriv")
	cmd := exec.Command(setpriv, fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups",
		busctl, "--address="+addr, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
		"RequestName", "su", name, "4")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)) + " (" + err.Error() + ")"
	}
	if got := strings.TrimSpace(string(out)); got != "u 1" { // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
		return "reply " + got
	}
	return ""
}

// On a bus running the shipped policy, a stranger owns no
// net.openvpn.v3.* name; the backend user owns only backend names; root
// owns the service names.
func TestPolicyNameOwnership(t *testing.T) {
	testenv.RequireRoot(t)
	beUID, beGID := testenv.EnsureBackendUser(t)
	b := BusDaemonFor(t)
	services := []string{"net.openvpn.v3.configuration", "net.openvpn.v3.sessions", "net.openvpn.v3.backends",
		"net.openvpn.v3.netcfg", "net.openvpn.v3.log"}
	others := []string{"net.openvpn.v3.backends.be4242", "net.openvpn.v3.backends.be1", "net.openvpn.v3",
		"net.openvpn.v3.client", "net.openvpn.v3.devposture", "net.openvpn.v3.anything.else"}
	for _, name := range append(append([]string{}, services...), others...) {
		if got := requestName(t, b.Address, 65534, 65534, name); !strings.Contains(got, "Access denied") {
			t.Errorf("stranger (uid 65534) owning %s: %q, want refused by the policy", name, got)
		}
	}
	for _, name := range services {
		if got := requestName(t, b.Address, beUID, beGID, name); !strings.Contains(got, "Access denied") {
			t.Errorf("backend user owning %s: %q, want refused", name, got)
		}
		if got := requestName(t, b.Address, 0, 0, name); got != "" {
			t.Errorf("root owning %s: %s", name, got)
		}
	}
	for _, name := range []string{"net.openvpn.v3.backends.be4242", "net.openvpn.v3.backends.be1"} {
		if got := requestName(t, b.Address, beUID, beGID, name); got != "" {
			t.Errorf("backend user owning %s: %s", name, got)
		}
	}
}

// The rules lintian applies to bus policy files (gui-ux.md §4.2): every
// allow for sending names its destination; no rule opens a whole message
// type or interface; nothing at_console; names owned are ours.
func TestPolicyFileLint(t *testing.T) {
	text, err := os.ReadFile(BusPolicyFile())
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		XMLName xml.Name
		Attrs   []xml.Attr `xml:",any,attr"`
	}
	type policy struct {
		User    string `xml:"user,attr"`
		Group   string `xml:"group,attr"`
		Context string `xml:"context,attr"`
		Console string `xml:"at_console,attr"`
		Rules   []rule `xml:",any"`
	}
	var conf struct {
		Policies []policy `xml:"policy"`
	}
	if err := xml.Unmarshal(text, &conf); err != nil {
		t.Fatalf("parse %s: %v", BusPolicyFile(), err)
	}
	if len(conf.Policies) == 0 {
		t.Fatal("no policies")
	}
	for _, p := range conf.Policies {
		where := fmt.Sprintf("policy user=%q context=%q", p.User, p.Context)
		if p.Console != "" {
			t.Errorf("%s: at_console policy", where)
		}
		if p.User != "" && p.User != "root" && p.User != testenv.BackendUser {
			t.Errorf("%s: unexpected user", where)
		}
		for _, r := range p.Rules {
			a := map[string]string{}
			for _, at := range r.Attrs {
				a[at.Name.Local] = at.Value
			}
			desc := fmt.Sprintf("%s: <%s %v>", where, r.XMLName.Local, a)
			hasSend, hasDest := false, a["send_destination"] != "" || a["send_destination_prefix"] != ""
			for k := range a {
				if strings.HasPrefix(k, "send_") {
					hasSend = true
				}
			}
			if r.XMLName.Local == "allow" && hasSend && !hasDest {
				t.Errorf("%s: allow without send_destination", desc)
			}
			for k, v := range a {
				if v == "*" {
					t.Errorf("%s: wildcard %s", desc, k)
				}
			}
			if own := a["own"] + a["own_prefix"]; own != "" && !strings.HasPrefix(own, "net.openvpn.v3.") {
				t.Errorf("%s: owns a name outside net.openvpn.v3", desc)
			}
			if d := a["send_destination"] + a["send_destination_prefix"]; d != "" && !strings.HasPrefix(d, "net.openvpn.v3.") {
				t.Errorf("%s: destination outside net.openvpn.v3", desc)
			}
		}
	}
}
