package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// secret is one planted secret and where it may legitimately be found.
type secret struct {
	what  string
	forms map[string]string // form name ("raw", "base64", "hex") -> text
	// allowed reports whether a source (a file path or a label such as
	// "owner Fetch") may hold the secret: the server's side, the inputs
	// the test wrote, and (key material only) the stored profile.
	allowed func(source string) bool
}

func nowhere(string) bool { return false }

// newSecret derives the searched forms of s: the text itself, its base64
// (SCRV1 and tokens are base64 on the wire) and hex.
func newSecret(what, s string, allowed func(string) bool) secret {
	return secret{what: what, allowed: allowed, forms: map[string]string{
		"raw":    s,
		"base64": base64.StdEncoding.EncodeToString([]byte(s)),
		"hex":    hex.EncodeToString([]byte(s)),
	}}
}

// leakSearch collects every place client-side data ended up in and
// reports each secret form found where it is not allowed.
type leakSearch struct {
	secrets []secret
	texts   map[string]string // label -> captured text (signals, properties, call results)
	roots   []string          // directories whose files (modified since `since`) are searched
	since   time.Time
}

func (ls *leakSearch) add(label, text string) {
	if ls.texts == nil {
		ls.texts = map[string]string{}
	}
	ls.texts[label] += text + "\n"
}

func (ls *leakSearch) check(source string, data []byte) []string {
	var found []string
	for _, s := range ls.secrets {
		if s.allowed(source) {
			continue
		}
		for form, text := range s.forms {
			if bytes.Contains(data, []byte(text)) {
				found = append(found, fmt.Sprintf("%s (%s form %q) in %s", s.what, form, text, source))
			}
		}
	}
	return found
}

// run returns every leak and the number of files searched.
func (ls *leakSearch) run() (leaks []string, files int) {
	for label, text := range ls.texts {
		leaks = append(leaks, ls.check(label, []byte(text))...)
	}
	seen := map[string]bool{}
	for _, root := range ls.roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || seen[path] {
				return nil // other tests' files come and go under /tmp
			}
			seen[path] = true
			info, err := d.Info()
			if err != nil || info.ModTime().Before(ls.since) || info.Size() > 256<<20 {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			files++
			leaks = append(leaks, ls.check(path, data)...)
			return nil
		})
	}
	return leaks, files
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// keyMaterial returns the private scalar of the client's EC key and one
// line of the tls-auth static key: key material that may sit in the
// profile (the test's input and the stored copy) and nowhere else.
func keyMaterial(t *testing.T, pki *testbed.PKIFiles, staticKey string) (scalar []byte, staticLine string) {
	t.Helper()
	b, err := os.ReadFile(pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", pki.ClientKey)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			t.Fatalf("client key: %v", err)
		}
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("client key is %T, want ECDSA", key)
	}
	if scalar, err = ec.Bytes(); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(staticKey)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) == 32 && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 16 {
		t.Fatalf("%s: %d key lines", staticKey, len(lines))
	}
	return scalar, lines[len(lines)/2]
}

// TestSecretsNeverLeak plants unique secrets — the password of a
// username/password profile (variant f), the password and static-challenge
// answer of variant g, a wrong password tried first (a failed login), the
// profile's key material (the client's private key, the tls-auth key), and
// the passphrase of an encrypted private key (variant a, a wrong one
// first; the key's plain form then belongs nowhere client-side) — runs the sessions through a failed and a successful login to
// CONN_CONNECTED against the real OpenVPN 2.6 server pushing auth-gen-token,
// and searches for them (raw, base64, hex): every signal on the private bus
// seen by a root monitor (Log, StatusChange, AttentionRequired…, including
// the Log signals LogForward sends), the session's last_log, Fetch/FetchJSON
// and property reads of a stranger UID, the owner's Fetch (no credentials),
// the output of `ovpn3 session-auth`, every file under the test's directory
// (helper and backend logs, the state directory) and every file under /tmp
// written during the test. Only the server's own files and the profile
// (key material: the test's input and the stored copy in the state
// directory) may hold them. Pushed session tokens (SESS_ID_…) must appear
// nowhere on the client side. A self-check plants copies and requires the
// search to find exactly them.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	for _, c := range []struct {
		v      testbed.Variant
		encKey bool
	}{{testbed.VariantF, false}, {testbed.VariantG, false}, {testbed.VariantA, true}} {
		name := string(c.v)
		if c.encKey {
			name += "-encrypted-key"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testSecretsNeverLeak(t, bin, c.v, c.encKey)
		})
	}
}

// testSecretsNeverLeak runs one case: v's username/password (f, g) or,
// with encKey, a certificate profile (a) whose private key is encrypted
// with the planted passphrase (a wrong one tried first).
func testSecretsNeverLeak(t *testing.T, bin testbed.Binaries, v testbed.Variant, encKey bool) {
	since := time.Now().Add(-time.Second)
	user := "user" + randomHex(t, 4)
	pass := "pw" + randomHex(t, 12)
	wrong := "wrongpw" + randomHex(t, 12)
	otp := "otp" + randomHex(t, 8)
	st := testbed.NewStack(t, bin, v, func(o *testbed.StackOptions) {
		o.Server.User, o.Server.Password, o.Server.OTP = user, pass, otp
		o.Server.AuthGenToken = v == testbed.VariantF || v == testbed.VariantG
		o.HelperArgs = append(o.HelperArgs, "--log-level", "6")
	})
	// Every signal on the bus, unicast ones included.
	mon, err := testbed.WatchSignals(st.Bus.Address, "type='signal'")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	w := watch(t, st)

	stateDir := filepath.Join(st.Dir, "state")
	serverSide := func(src string) bool {
		return strings.HasPrefix(src, filepath.Join(st.Dir, "server")+"/") || strings.HasPrefix(src, st.PKI.Dir+"/")
	}
	profilePath := filepath.Join(st.Dir, string(v)+"-"+v.Name()+".ovpn")
	keyPlaces := func(src string) bool {
		return serverSide(src) || src == profilePath || strings.HasPrefix(src, stateDir+"/") || src == "owner Fetch"
	}
	what := "password"
	if encKey {
		what = "private key passphrase"
	}
	secrets := []secret{
		newSecret(what, pass, serverSide),
		newSecret("wrong "+what, wrong, serverSide),
		// The pushed token is unknown to the test but carries openvpn's
		// prefix. Other tests' files under /tmp may hold their own tokens
		// (their servers' logs), so only this test's directory and the
		// captured texts are searched for it.
		{what: "session token", forms: map[string]string{"prefix": "SESS_ID_"}, allowed: func(src string) bool {
			return serverSide(src) || (strings.HasPrefix(src, "/") && !strings.HasPrefix(src, st.Dir+"/"))
		}},
	}
	answersGood := []string{user, pass}
	answersBad := []string{user, wrong}
	if v == testbed.VariantG {
		secrets = append(secrets, newSecret("static-challenge answer", otp, serverSide))
		answersGood = append(answersGood, otp)
		answersBad = append(answersBad, otp)
		scalar, staticLine := keyMaterial(t, st.PKI, st.PKI.TLSAuth)
		secrets = append(secrets,
			secret{what: "client private key", allowed: keyPlaces, forms: map[string]string{
				"hex": hex.EncodeToString(scalar), "base64": base64.StdEncoding.EncodeToString(scalar)[:40]}},
			secret{what: "tls-auth key", allowed: keyPlaces, forms: map[string]string{"hex": staticLine}})
	}
	if encKey {
		// The key is stored encrypted: its plain form belongs to the PKI
		// the test made and nowhere else, the profile included.
		scalar, staticLine := keyMaterial(t, st.PKI, st.PKI.TLSCrypt)
		secrets = append(secrets,
			secret{what: "client private key", allowed: serverSide, forms: map[string]string{
				"hex": hex.EncodeToString(scalar), "base64": base64.StdEncoding.EncodeToString(scalar)[:40]}},
			secret{what: "tls-crypt key", allowed: keyPlaces, forms: map[string]string{"hex": staticLine}})
	}
	ls := &leakSearch{secrets: secrets, since: since}
	// st.Dir is under the temp dir: run skips files already searched.
	ls.roots = []string{st.Dir, os.TempDir(), "/tmp"}

	name := "e2e-secrets-" + string(v)
	// Persistent: the state directory then holds the stored profile.
	profile, err := st.WriteProfile(v)
	if err != nil {
		t.Fatal(err)
	}
	if profile != profilePath {
		t.Fatalf("profile written to %s, want %s", profile, profilePath)
	}
	if encKey {
		encryptProfileKey(t, st.PKI, profile, pass)
	}
	ictx, icancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer icancel()
	if _, err := st.CLI(ictx, "config-import", "--config", profile, "--name", name, "--persistent"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var path dbus.ObjectPath
	if encKey {
		path = unlockKey(ctx, t, st, w, ls, name, wrong, pass)
	} else {
		path = logIn(ctx, t, st, ls, name, answersBad, answersGood)
	}
	if s := sessionStatus(t, st, path); s.Minor != api.StatusMinorConnConnected {
		t.Fatalf("status after the right answers: %s", s)
	}
	ls.add("last_log when connected", fmt.Sprint(property(ctx, t, st.Conn, path, "last_log")))

	var cfgs []dbus.ObjectPath
	if err := st.Conn.Object(api.ServiceConfiguration, api.PathConfiguration).
		CallWithContext(ctx, api.InterfaceConfiguration+".LookupConfigName", 0, name).Store(&cfgs); err != nil || len(cfgs) != 1 {
		t.Fatalf("LookupConfigName %s: %v %v", name, cfgs, err)
	}
	cfg := cfgs[0]
	for _, m := range []string{"Fetch", "FetchJSON"} {
		var text string
		if err := st.Conn.Object(api.ServiceConfiguration, cfg).CallWithContext(ctx, api.InterfaceConfiguration+"."+m, 0).Store(&text); err != nil {
			t.Fatalf("owner %s: %v", m, err)
		}
		ls.add("owner Fetch", text)
	}
	stranger := busobjtest.DialAs(t, st.Bus.Address, 65534, 65534)
	for _, c := range []struct {
		dest string
		path dbus.ObjectPath
		m    string
		args []any
	}{
		{api.ServiceConfiguration, cfg, api.InterfaceConfiguration + ".Fetch", nil},
		{api.ServiceConfiguration, cfg, api.InterfaceConfiguration + ".FetchJSON", nil},
		{api.ServiceConfiguration, cfg, api.InterfaceConfiguration + ".FetchForBackend", nil},
		{api.ServiceConfiguration, cfg, api.InterfaceProperties + ".GetAll", []any{api.InterfaceConfiguration}},
		{api.ServiceSessions, path, api.InterfaceProperties + ".GetAll", []any{api.InterfaceSessions}},
		{api.ServiceSessions, path, api.InterfaceProperties + ".Get", []any{api.InterfaceSessions, "last_log"}},
	} {
		call := stranger.Object(c.dest, c.path).CallWithContext(ctx, c.m, 0, c.args...)
		ls.add("stranger "+c.m, fmt.Sprint(call.Body, call.Err))
	}

	if _, err := st.CLI(ctx, "session-manage", "--path", string(path), "--disconnect"); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))

	sigs := mon.Signals()
	var logs int
	for _, s := range sigs {
		if strings.HasSuffix(s.Name, ".Log") {
			logs++
		}
		ls.add("signal "+s.Name, testbed.FormatSignal(s))
	}
	if logs == 0 {
		t.Errorf("the monitor saw no Log signal among %d signals: nothing searched there", len(sigs))
	}

	// Self-check: planted copies are found, each where it was put.
	planted := filepath.Join(st.Dir, "planted-copy.log")
	if err := os.WriteFile(planted, []byte("x"+secrets[0].forms["base64"]+"x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls.add("planted signal", "Log "+wrong)
	leaks, _ := ls.run()
	if len(leaks) != 2 || !anyContains(leaks, "in "+planted) || !anyContains(leaks, "in planted signal") {
		t.Errorf("self-check: the search found %d leaks, want exactly the 2 planted copies:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	delete(ls.texts, "planted signal")

	leaks, files := ls.run()
	for _, l := range leaks {
		t.Errorf("secret leaked: %s", l)
	}
	var stored int
	_ = filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			stored++
		}
		return nil
	})
	t.Logf("searched %d signals, %d captured texts and %d files (%d in the state directory) for %d secrets", len(sigs), len(ls.texts), files, stored, len(secrets))
}

// logIn starts a session of profile name the way a front-end that leaves
// does, then answers its credentials with `ovpn3 session-auth`: bad ones
// (a failed login), then good ones; it returns the connected session.
func logIn(ctx context.Context, t *testing.T, st *testbed.Stack, ls *leakSearch, name string, answersBad, answersGood []string) dbus.ObjectPath {
	t.Helper()
	path, pid := startWaitingSession(t, st, name)
	if err := st.Conn.Object(api.ServiceSessions, path).CallWithContext(ctx, api.InterfaceSessions+".LogForward", 0, true).Err; err != nil {
		t.Fatalf("LogForward: %v", err)
	}
	out, err := sessionAuth(ctx, st, pid, answersBad...)
	if err == nil || !strings.Contains(out, "user authentication failed") {
		t.Fatalf("session-auth with the wrong password: err %v\n%s", err, out)
	}
	ls.add("ovpn3 session-auth output (failed login)", out)
	ls.add("last_log after the failed login", fmt.Sprint(property(ctx, t, st.Conn, path, "last_log")))
	out, err = sessionAuth(ctx, st, pid, answersGood...)
	if err != nil || !strings.Contains(out, "Connected to") {
		t.Fatalf("session-auth with the right answers: %v\n%s", err, out)
	}
	ls.add("ovpn3 session-auth output", out)
	return path
}

// unlockKey starts a session of profile name (its key encrypted) over
// D-Bus, provides a wrong passphrase (Connect fails, the slot is asked for
// again), then the right one, and waits until it is connected.
func unlockKey(ctx context.Context, t *testing.T, st *testbed.Stack, w *testbed.Watcher, ls *leakSearch, name, wrong, pass string) dbus.ObjectPath {
	t.Helper()
	path, sess := newSession(t, st, name)
	call := func(m string, args ...any) error {
		return sess.CallWithContext(ctx, api.InterfaceSessions+"."+m, 0, args...).Err
	}
	if err := call("LogForward", true); err != nil {
		t.Fatalf("LogForward: %v", err)
	}
	if err := call("Ready"); !api.IsDomain(err, api.DomainReady) {
		t.Fatalf("Ready with a locked key: %v", err)
	}
	provideAll(t, sess, map[string]string{"pk_passphrase": wrong})
	err := call("Connect")
	if err == nil {
		t.Fatal("Connect with a wrong passphrase succeeded")
	}
	ls.add("Connect error (wrong passphrase)", err.Error())
	ls.add("last_log after the wrong passphrase", fmt.Sprint(property(ctx, t, st.Conn, path, "last_log")))
	if err := call("Ready"); !api.IsDomain(err, api.DomainReady) {
		t.Fatalf("Ready after a wrong passphrase: %v", err)
	}
	provideAll(t, sess, map[string]string{"pk_passphrase": pass})
	if err := call("Connect"); err != nil {
		t.Fatalf("Connect with the right passphrase: %v", err)
	}
	waitSignal(t, w, 60*time.Second, "CONN_CONNECTED", isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected))
	return path
}

// encryptProfileKey replaces the <key> block of the profile file with the
// client key encrypted (PKCS#8, AES-256-CBC) with passphrase.
func encryptProfileKey(t *testing.T, pki *testbed.PKIFiles, profile, passphrase string) {
	t.Helper()
	testenv.RequireCommand(t, "openssl")
	enc := filepath.Join(t.TempDir(), "key.pem")
	if out, err := exec.Command("openssl", "pkcs8", "-topk8", "-in", pki.ClientKey, "-v2", "aes-256-cbc",
		"-passout", "pass:"+passphrase, "-out", enc).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	keyPEM, err := os.ReadFile(enc)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<key>.*</key>`)
	if !re.Match(text) {
		t.Fatalf("%s has no <key> block", profile)
	}
	text = re.ReplaceAllLiteral(text, []byte("<key>\n"+strings.TrimSpace(string(keyPEM))+"\n</key>"))
	if err := os.WriteFile(profile, text, 0o600); err != nil {
		t.Fatal(err)
	}
}

// property reads one property of a session object.
func property(ctx context.Context, t *testing.T, conn *dbus.Conn, path dbus.ObjectPath, name string) any {
	t.Helper()
	var v dbus.Variant
	if err := conn.Object(api.ServiceSessions, path).CallWithContext(ctx, api.InterfaceProperties+".Get", 0, api.InterfaceSessions, name).Store(&v); err != nil {
		t.Fatalf("%s property %s: %v", path, name, err)
	}
	return v.Value()
}
