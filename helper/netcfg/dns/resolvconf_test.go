package dns

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// original is a resolv.conf with everything a byte-for-byte restore can
// get wrong: comments, odd spacing, no final newline.
const original = "# managed by the LAN\nnameserver 192.0.2.53\nnameserver  192.0.2.54\n;x\nsearch lan.example\noptions edns0 trust-ad\n\n\tdomain\tlan.example"

func ap(s string) netip.AddrPort {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 0)
	}
	return netip.MustParseAddrPort(s)
}

var (
	fullLink = Link{Key: "/dev/1", Index: 7, Name: "tun0", DefaultRoute: true,
		Servers: []netip.AddrPort{ap("10.8.0.1"), ap("10.8.0.2:5353"), ap("fd00:8::1")}, Search: []string{"corp.example"}}
	splitLink = Link{Key: "/dev/2", Index: 8, Name: "tun1",
		Servers: []netip.AddrPort{ap("10.9.0.1")}, Routing: []string{"branch.example"}, Search: []string{"branch.example"}}
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nameservers(text string) []string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

// wantPrimed: after the last tunnel went, the journal stays only as the
// record of the original written ahead for the next tunnel: the file is
// that original, so a recovery would find nothing to undo.
func wantPrimed(t *testing.T, path, state string) {
	t.Helper()
	_, st, err := NewResolvConf(path, state, testLogger(t)).load()
	if err != nil || st != fileOriginal {
		t.Errorf("journal after the last tunnel: state %d, %v; want the original recorded ahead", st, err)
	}
}

func wantNoJournal(t *testing.T, state string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(state, JournalDir, "resolvconf.json")); !os.IsNotExist(err) {
		t.Errorf("journal left behind: %v", err)
	}
}

// TestResolvConfFile: full DNS lists only the tunnel's servers (no port,
// at most three), a second split tunnel adds its own, and the original comes
// back byte for byte, with its mode, when the last one goes.
func TestResolvConfFile(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte(original), 0o640); err != nil {
		t.Fatal(err)
	}
	m := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	ctx := context.Background()

	a, err := m.Apply(ctx, fullLink)
	if err != nil {
		t.Fatal(err)
	}
	text := readFile(t, path)
	if got := nameservers(text); fmt.Sprint(got) != "[10.8.0.1 fd00:8::1]" {
		t.Errorf("full DNS nameservers %v (the LAN's must not stay, a port cannot be written):\n%s", got, text)
	}
	if !strings.Contains(text, "search corp.example lan.example\n") || !strings.Contains(text, "options edns0 trust-ad\n") {
		t.Errorf("search/options lost:\n%s", text)
	}
	if fmt.Sprint(a.Servers, a.Search) != "[10.8.0.1 fd00:8::1] [corp.example]" {
		t.Errorf("applied %+v", a)
	}

	if _, err := m.Apply(ctx, splitLink); err != nil {
		t.Fatal(err)
	}
	if got := nameservers(readFile(t, path)); fmt.Sprint(got) != "[10.8.0.1 fd00:8::1 10.9.0.1]" {
		t.Errorf("two tunnels: nameservers %v", got)
	}
	servers, search := m.Global()
	if fmt.Sprint(servers, search) != "[10.8.0.1 fd00:8::1 10.9.0.1] [corp.example branch.example]" {
		t.Errorf("global %v %v", servers, search)
	}

	// The full-DNS tunnel goes: split DNS keeps the LAN servers behind.
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := nameservers(readFile(t, path)); fmt.Sprint(got) != "[10.9.0.1 192.0.2.53 192.0.2.54]" {
		t.Errorf("split only: nameservers %v", got)
	}
	if _, err := m.Revert(ctx, splitLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != original {
		t.Errorf("not restored:\n%q\nwant\n%q", got, original)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	wantPrimed(t, path, state)
	if servers, search := m.Global(); len(servers)+len(search) != 0 {
		t.Errorf("global after revert %v %v", servers, search)
	}
}

// TestResolvConfSymlink: a symlinked resolv.conf is replaced by our file
// (its target stays untouched) and the symlink comes back.
func TestResolvConfSymlink(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	target := filepath.Join(dir, "managed-resolv.conf")
	if err := os.WriteFile(target, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "resolv.conf")
	if err := os.Symlink("managed-resolv.conf", path); err != nil {
		t.Fatal(err)
	}
	m := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	ctx := context.Background()
	if _, err := m.Apply(ctx, splitLink); err != nil {
		t.Fatal(err)
	}
	if got := nameservers(readFile(t, path)); fmt.Sprint(got) != "[10.9.0.1 192.0.2.53 192.0.2.54]" {
		t.Errorf("nameservers %v", got)
	}
	if readFile(t, target) != original {
		t.Error("the symlink's target was changed")
	}
	if _, err := m.Revert(ctx, splitLink.Key); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(path); err != nil || l != "managed-resolv.conf" {
		t.Errorf("symlink not restored: %q %v", l, err)
	}
	wantPrimed(t, path, state)
}

// TestResolvConfRewrittenMeanwhile: when something else rewrites the file
// while a tunnel is up, its version stays after disconnect.
func TestResolvConfRewrittenMeanwhile(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	m := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	ctx := context.Background()
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	const theirs = "nameserver 192.0.2.99\n"
	if err := os.WriteFile(path, []byte(theirs), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != theirs {
		t.Errorf("their file replaced: %q", got)
	}
	wantNoJournal(t, state)

	// Missing at first: created, and removed again.
	os.Remove(path)
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("file we created is still there: %v", err)
	}
}

// TestResolvConfRecover: a helper that dies with a tunnel's DNS applied
// leaves a journal; the next one restores the original from it, and leaves
// alone a file rewritten since.
func TestResolvConfRecover(t *testing.T) {
	for _, rewritten := range []bool{false, true} {
		t.Run(fmt.Sprint("rewritten=", rewritten), func(t *testing.T) {
			dir, state := t.TempDir(), t.TempDir()
			path := filepath.Join(dir, "resolv.conf")
			if err := os.WriteFile(path, []byte(original), 0o644); err != nil {
				t.Fatal(err)
			}
			crashed := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
			if _, err := crashed.Apply(context.Background(), fullLink); err != nil {
				t.Fatal(err)
			}
			if _, err := crashed.Apply(context.Background(), splitLink); err != nil {
				t.Fatal(err)
			}
			want := original
			if rewritten {
				want = "nameserver 192.0.2.77\n"
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := New(context.Background(), Options{StateDir: state, ResolvConf: path, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if m.Backend() != "resolv.conf" {
				t.Errorf("backend %s", m.Backend())
			}
			if got := readFile(t, path); got != want {
				t.Errorf("after recovery %q, want %q", got, want)
			}
			wantPrimed(t, path, state)
		})
	}
}

// bindChildEnv runs TestResolvConfBindMount's body in a private mount
// namespace (unshare -m), where it may bind-mount without touching the
// host's mounts.
const bindChildEnv = "OVPN3GO_DNS_BIND_CHILD"

// TestResolvConfBindMount: a bind-mounted resolv.conf (containers) cannot
// be replaced by rename; it is written in place, stays the mount, and gets
// its original bytes back — also after a crash.
func TestResolvConfBindMount(t *testing.T) {
	if dir := os.Getenv(bindChildEnv); dir != "" {
		bindMountScenario(t, dir)
		return
	}
	testenv.RequireRoot(t)
	unshare := testenv.RequireCommand(t, "unshare")
	dir := t.TempDir()
	cmd := exec.Command(unshare, "-m", "--propagation", "private", os.Args[0], "-test.run=^TestResolvConfBindMount$", "-test.v")
	cmd.Env = append(os.Environ(), bindChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestResolvConfBindMount")) {
		t.Fatalf("child in a private mount namespace: %v", err)
	}
}

func bindMountScenario(t *testing.T, dir string) {
	etc := filepath.Join(dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(etc, "resolv.conf")
	src := filepath.Join(dir, "host-resolv.conf")
	for _, p := range []string{path, src} {
		if err := os.WriteFile(p, []byte(original), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	if renameable(path) {
		t.Fatal("a bind-mounted file looks replaceable by rename")
	}
	state := t.TempDir()
	ctx := context.Background()
	m := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if got := nameservers(readFile(t, src)); fmt.Sprint(got) != "[10.8.0.1 fd00:8::1]" {
		t.Errorf("not written through the mount: %v", got)
	}
	if renameable(path) {
		t.Error("the mount was replaced")
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, src); got != original {
		t.Errorf("not restored in place: %q", got)
	}

	// A crash with the tunnel's file in place, then a new helper.
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{StateDir: state, ResolvConf: path, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != original {
		t.Errorf("not recovered in place: %q", got)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != 0 || fi.Mode().Perm() != fs.FileMode(0o644) {
		t.Errorf("file now %v %v", fi, err)
	}
	wantPrimed(t, path, state)

	// A crash in the middle of writing in place (here: of restoring the
	// original) leaves a torn file; the next start still restores it.
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(original[:17]), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{StateDir: state, ResolvConf: path, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != original {
		t.Errorf("torn in-place write not recovered: %q", got)
	}
	wantPrimed(t, path, state)
}

func TestParseServer(t *testing.T) {
	for in, want := range map[string]string{
		"10.8.0.1": "10.8.0.1:0 ", "10.8.0.1:5353": "10.8.0.1:5353 ", "[fd00::1]:853#dns.example": "[fd00::1]:853 dns.example",
		"fd00::1": "[fd00::1]:0 ", "::ffff:10.1.1.1": "10.1.1.1:0 ",
	} {
		a, sni, err := ParseServer(in)
		if err != nil || a.String()+" "+sni != want {
			t.Errorf("%q: %v %q %v, want %s", in, a, sni, err, want)
		}
	}
	for _, bad := range []string{"", "x", "fe80::1%eth0", "10.0.0.1:99999", "[fd00::1]"} {
		if _, _, err := ParseServer(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// countSyncs counts the syncs (by file name) until the test ends.
func countSyncs(t *testing.T) func() []string {
	var mu sync.Mutex
	var synced []string
	real := syncFile
	syncFile = func(f *os.File) error {
		mu.Lock()
		synced = append(synced, f.Name())
		mu.Unlock()
		return real(f)
	}
	t.Cleanup(func() { syncFile = real })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := synced
		synced = nil
		return out
	}
}

// TestApplySyncs: an Apply without a journal written ahead syncs the
// journal (file and directory) before the new resolv.conf is renamed into
// place, and neither the new file nor the rename (see ResolvConf: recovery
// copes with either lost). The journal stays after the last Revert (it
// records the original, back in place) for the next tunnel, so Choose
// syncs nothing unless the file changed meanwhile, and the Applies after
// it, a second link's too, sync nothing.
func TestApplySyncs(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte(original), 0o640); err != nil {
		t.Fatal(err)
	}
	synced := countSyncs(t)
	jdir := filepath.Join(state, JournalDir)
	// The file must still be the original when the journal's directory
	// is synced.
	current := original // what the file holds but for our writes
	real := syncFile
	syncFile = func(f *os.File) error {
		if f.Name() == jdir && readFile(t, path) != current {
			t.Errorf("resolv.conf replaced before the journal's directory was synced")
		}
		return real(f)
	}
	m := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	ctx := context.Background()
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if text := readFile(t, path); text == original {
		t.Fatal("resolv.conf not rewritten")
	}
	if got := synced(); len(got) != 2 || !strings.HasPrefix(got[0], filepath.Join(jdir, ".resolvconf.json")) || got[1] != jdir {
		t.Errorf("synced %q: want the journal and its directory only", got)
	}
	// The last tunnel goes: the original comes back (its file and
	// directory synced), and the journal, which records it, stays for
	// the next tunnel.
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := synced(); len(got) != 2 || got[1] != dir {
		t.Errorf("Revert synced %q: want the restored file and its directory", got)
	}
	wantPrimed(t, path, state)
	m.Choose(ctx)
	if got := synced(); len(got) != 0 {
		t.Errorf("Choose synced %q with the journal recorded ahead: want nothing", got)
	}
	// Someone rewrites the file meanwhile: Choose records it again.
	current = original + "\n"
	if err := os.WriteFile(path, []byte(current), 0o640); err != nil {
		t.Fatal(err)
	}
	m.Choose(ctx)
	if got := synced(); len(got) != 2 || got[1] != jdir {
		t.Errorf("Choose synced %q after a change: want the journal and its directory", got)
	}
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(ctx, splitLink); err != nil {
		t.Fatal(err)
	}
	if got := synced(); len(got) != 0 {
		t.Errorf("the Applies after Choose synced %q: want nothing", got)
	}
	if got := nameservers(readFile(t, path)); fmt.Sprint(got) != "[10.8.0.1 fd00:8::1 10.9.0.1]" {
		t.Errorf("nameservers %v", got)
	}
	for _, l := range []Link{splitLink, fullLink} {
		if _, err := m.Revert(ctx, l.Key); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, path); got != current {
		t.Errorf("not restored: %q", got)
	}
	wantPrimed(t, path, state)
}
