package dns

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultResolvConf is the file the resolv.conf backend rewrites.
const DefaultResolvConf = "/etc/resolv.conf"

// maxNameservers is glibc's MAXNS: further nameserver lines are ignored.
const maxNameservers = 3

// ResolvConf writes the tunnels' settings into a resolv.conf file. Before
// the first change it records the file as it was (a regular file's bytes,
// mode and owner, or a symlink's target) in its journal; when the last
// tunnel goes it puts that back, unless something else rewrote the file
// meanwhile, whose version then stays. A file that cannot be replaced by
// rename (a bind mount, as in containers) is written in place.
//
// Crash safety: the journal (the original and a random token) is on disk,
// file and directory synced, before our file can replace the original, so
// that no crash, power loss included, leaves the tunnel's servers in the
// file with nothing to say what to put back. Prime writes it ahead, while
// the tunnel's handshake runs (and Revert again once the original is back,
// for the next tunnel), so the Apply on the way to connected writes only
// the file. A record whose original is in place is harmless: Recover just
// drops it. Our file names the token in its last line with a checksum
// of the rest (stamp), so that recovery knows it as ours without the
// journal recording each version we write. The new file's data and its
// rename are not synced: a process crash keeps both in the page cache, and
// after a power loss the file is the original (nothing to do), ours
// (restored) or, when the rename reached the disk and the data did not,
// empty (restored: Recover takes a blank file for a torn one of ours).
type ResolvConf struct {
	path string
	j    journal
	log  *slog.Logger
	// durable is the token of the record this process stored (synced)
	// and has not removed: an Apply replacing the file by rename need not
	// store it again. The Manager serialises the calls.
	durable string
	// removing: the old file an exchange replaced is being removed.
	removing sync.WaitGroup
}

// NewResolvConf returns the backend for path (DefaultResolvConf on a real
// system) journalling in stateDir.
func NewResolvConf(path, stateDir string, logger *slog.Logger) *ResolvConf {
	if logger == nil {
		logger = slog.Default()
	}
	return &ResolvConf{path: path, j: journal{filepath.Join(stateDir, JournalDir, "resolvconf.json")}, log: logger}
}

// Name implements Backend.
func (r *ResolvConf) Name() string { return "resolv.conf" }

// resolvRecord is the journal: the original file and what we last wrote.
type resolvRecord struct {
	Path string
	// The original: a symlink (Symlink set), a regular file (Content,
	// Mode, UID, GID) or nothing (Missing).
	Symlink  string `json:",omitempty"`
	Missing  bool   `json:",omitempty"`
	Content  []byte `json:",omitempty"`
	Mode     uint32
	UID, GID int
	// Base is the original's text as read through a symlink: its
	// nameservers stay behind the tunnels' with split DNS.
	Base []byte `json:",omitempty"`
	// Written is what we wrote last; InPlace says it was written into
	// the existing file, which a crash can leave half done.
	Written []byte
	InPlace bool `json:",omitempty"`
	// Token is in the last line of every file we write (see stamp).
	Token string `json:",omitempty"`
}

// capture records path as it is now.
func (r *ResolvConf) capture() (resolvRecord, error) {
	rec := resolvRecord{Path: r.path, Mode: 0o644}
	fi, err := os.Lstat(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rec.Missing = true
		return rec, nil
	case err != nil:
		return rec, err
	case fi.Mode()&fs.ModeSymlink != 0:
		if rec.Symlink, err = os.Readlink(r.path); err != nil {
			return rec, err
		}
		rec.Base, _ = os.ReadFile(r.path) // a dangling link has no text
		return rec, nil
	case !fi.Mode().IsRegular():
		return rec, fmt.Errorf("%s is not a regular file (%v)", r.path, fi.Mode().Type())
	}
	if rec.Content, err = os.ReadFile(r.path); err != nil {
		return rec, err
	}
	if rec.Content == nil {
		rec.Content = []byte{} // an empty original is not a missing one
	}
	rec.Mode = uint32(fi.Mode().Perm())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		rec.UID, rec.GID = int(st.Uid), int(st.Gid)
	}
	rec.Base = rec.Content
	return rec, nil
}

// fileState is what the file holds compared with a journal record.
type fileState int

const (
	noRecord     fileState = iota // no journal
	fileOurs                      // what we wrote
	fileOriginal                  // still the original the record holds
	fileTheirs                    // neither: someone else rewrote it
)

// load reads the journal and compares the file with it.
func (r *ResolvConf) load() (resolvRecord, fileState, error) {
	var rec resolvRecord
	ok, err := r.j.load(&rec)
	if err != nil || !ok {
		return rec, noRecord, err
	}
	if rec.Path != r.path {
		return rec, noRecord, fmt.Errorf("journal is for %s, not %s", rec.Path, r.path)
	}
	if r.ours(rec) {
		return rec, fileOurs, nil
	}
	if cur, err := r.capture(); err == nil && sameOriginal(cur, rec) {
		return rec, fileOriginal, nil
	}
	return rec, fileTheirs, nil
}

// sameOriginal reports whether two records hold the same original file.
func sameOriginal(a, b resolvRecord) bool {
	return a.Symlink == b.Symlink && a.Missing == b.Missing && bytes.Equal(a.Content, b.Content) &&
		(a.Content == nil) == (b.Content == nil) && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		bytes.Equal(a.Base, b.Base)
}

// ours reports whether the file holds what we wrote (our stamp, or what the
// record says we wrote last), or, after an in-place write (or restore) that
// a crash interrupted, a beginning of what we were writing.
func (r *ResolvConf) ours(rec resolvRecord) bool {
	cur, ok := r.regular()
	if !ok {
		return false
	}
	return stamped(cur, rec.Token) || rec.Written != nil && bytes.Equal(cur, rec.Written) ||
		rec.InPlace && (bytes.HasPrefix(rec.Written, cur) || bytes.HasPrefix(rec.Content, cur))
}

// regular returns the file's bytes if it is a regular file.
func (r *ResolvConf) regular() ([]byte, bool) {
	fi, err := os.Lstat(r.path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	cur, err := os.ReadFile(r.path)
	return cur, err == nil
}

// stampPrefix begins the last line of every file we write.
const stampPrefix = "# ovpn3go "

// stamp appends the line that marks text as written under the journal
// record with token: the token and text hashed together, so that neither a
// file of another record nor ours edited since passes for it.
func stamp(text []byte, token string) []byte {
	return fmt.Appendf(text, "%s%s\n", stampPrefix, stampSum(text, token))
}

func stampSum(text []byte, token string) string {
	h := sha256.New()
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write(text)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// stamped reports whether b is a text stamped with token.
func stamped(b []byte, token string) bool {
	if token == "" || !bytes.HasSuffix(b, []byte("\n")) {
		return false
	}
	i := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	return string(b[i:len(b)-1]) == stampPrefix+stampSum(b[:i], token)
}

// blank reports whether the file is empty or only NUL bytes: what a power
// loss can make of a file renamed into place before its data were written.
func (r *ResolvConf) blank() bool {
	cur, ok := r.regular()
	return ok && len(bytes.Trim(cur, "\x00")) == 0
}

func newToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("journal token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// record returns the journal record to write under: the one on disk while
// the file is ours or still its original, else the file as it is now under
// a new token.
func (r *ResolvConf) record(warnTheirs bool) (resolvRecord, error) {
	rec, st, err := r.load()
	if err != nil {
		return rec, err
	}
	switch st {
	case fileOurs, fileOriginal:
		if rec.Token != "" {
			return rec, nil
		}
	case fileTheirs:
		if warnTheirs {
			r.log.Warn("resolv.conf was rewritten by someone else while a VPN was active; theirs is what will be restored", "path", r.path)
		}
		r.durable = ""
	}
	if st != fileOurs {
		if rec, err = r.capture(); err != nil {
			return rec, fmt.Errorf("record %s: %w", r.path, err)
		}
	}
	rec.Token, err = newToken()
	return rec, err
}

// Prime records the file as it is now in the journal, synced, before any
// tunnel's settings are known: netcfg calls it (through Manager.Choose)
// while a tunnel's handshake runs, so that the Apply on the way to
// connected has only the file to write. It changes nothing of the host's
// resolver; a journal already in place and stored by this process stays.
func (r *ResolvConf) Prime(context.Context) error {
	r.settle()
	rec, err := r.record(false)
	if err != nil || rec.Token == r.durable {
		return err
	}
	return r.store(&rec)
}

// store writes the record to the journal, synced.
func (r *ResolvConf) store(rec *resolvRecord) error {
	r.durable = ""
	if err := r.j.store(rec); err != nil {
		return err
	}
	r.durable = rec.Token
	return nil
}

// forget removes the journal.
func (r *ResolvConf) forget() error {
	r.durable = ""
	return r.j.remove()
}

// Apply implements Backend.
func (r *ResolvConf) Apply(_ context.Context, l Link, all []Link) (Applied, error) {
	r.settle()
	rec, err := r.record(true)
	if err != nil {
		return Applied{}, err
	}
	text, applied := r.render(rec.Base, all)
	if err := r.write(&rec, stamp(text, rec.Token)); err != nil {
		return Applied{}, err
	}
	return applied[l.Key], nil
}

// write puts text into the file, the journal first (see ResolvConf).
func (r *ResolvConf) write(rec *resolvRecord, text []byte) error {
	fi, err := os.Lstat(r.path)
	// A symlink is replaced by a regular file (and recreated on
	// restore); a regular file is replaced by rename where possible.
	inPlace := err == nil && fi.Mode().IsRegular() && !renameable(r.path)
	rec.Written, rec.InPlace = text, inPlace || rec.InPlace
	if inPlace {
		// A torn in-place write is known by the record's Written.
		if err := r.store(rec); err != nil {
			return err
		}
		return writeInPlace(r.path, text)
	}
	if rec.Token != r.durable {
		if err := r.store(rec); err != nil {
			return err
		}
	}
	tmp, err := prepareReplace(r.path, text, fs.FileMode(rec.Mode), rec.UID, rec.GID, false)
	if err != nil {
		return fmt.Errorf("write %s: %w", r.path, err)
	}
	if fi != nil {
		err = exchange(r, tmp)
	}
	if fi == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.ENOENT) {
		err = os.Rename(tmp, r.path)
	}
	if err == nil {
		return nil
	}
	os.Remove(tmp)
	if errors.Is(err, syscall.EBUSY) && !rec.InPlace {
		// A mount point the probe did not see (no STATX_MNT_ID).
		rec.InPlace = true
		if err := r.store(rec); err != nil {
			return err
		}
		return writeInPlace(r.path, text)
	}
	return fmt.Errorf("write %s: %w", r.path, err)
}

// exchange puts the new file tmp in place of the existing path
// atomically, as a rename over it would, and has the old one, now under
// tmp's name, removed in the background. ext4 writes a file's data out
// before it is renamed over another (auto_da_alloc: 0.2-1.5 ms here, on
// the connect's path), not before an exchange; the data go unsynced either
// way (see ResolvConf). Removing the old file took 0.5 ms more
// (BenchmarkEstablish, median), so it is not waited for: every later
// call of the backend waits for it first (settle), and a crash before it
// leaves the old file under tmp's name, which Recover removes
// (tempPrefix). EINVAL or ENOSYS: the filesystem or kernel cannot
// exchange (the caller renames), and nothing was changed.
var exchange = func(r *ResolvConf, tmp string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, r.path, unix.RENAME_EXCHANGE); err != nil {
		return err
	}
	r.removing.Add(1)
	go func() {
		defer r.removing.Done()
		if err := os.Remove(tmp); err != nil {
			r.log.Warn("the replaced resolv.conf not removed", "file", tmp, "err", err)
		}
	}()
	return nil
}

// settle waits for the removal of a replaced file (exchange).
func (r *ResolvConf) settle() { r.removing.Wait() }

// renameable reports whether path can be replaced by rename: not when it is
// a mount point of its own (a bind-mounted file, as in containers), which
// rename refuses with EBUSY.
func renameable(path string) bool {
	var d, f unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, filepath.Dir(path), 0, unix.STATX_MNT_ID, &d) != nil ||
		unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &f) != nil {
		return false
	}
	return d.Mnt_id == f.Mnt_id
}

// writeInPlace truncates and rewrites the existing file.
func writeInPlace(path string, text []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s in place: %w", path, err)
	}
	_, err = f.Write(text)
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s in place: %w", path, err)
	}
	return nil
}

func writeReplaceOwned(path string, b []byte, mode fs.FileMode, uid, gid int) error {
	tmp, err := prepareReplace(path, b, mode, uid, gid, true)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// tempPrefix begins the names of our temporary files next to path.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".ovpn3go-" }

// removeTemps removes what a crash left of our temporary files next to
// path (a new file not yet in place, or an old one exchanged out).
func (r *ResolvConf) removeTemps() {
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(r.path), tempPrefix(r.path)+"*"))
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("temporary file left by a crash not removed", "file", f, "err", err)
		}
	}
}

// prepareReplace writes b to a temporary file next to path (synced if
// sync), with path's mode and owner, and returns its name: renaming it over
// path replaces path atomically.
func prepareReplace(path string, b []byte, mode fs.FileMode, uid, gid int, sync bool) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+"*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && os.Geteuid() == 0 {
		err = f.Chown(uid, gid)
	}
	if err == nil && sync {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// Revert implements Backend.
func (r *ResolvConf) Revert(ctx context.Context, _ Link, rest []Link) error {
	r.settle()
	rec, st, err := r.load()
	if err != nil {
		return err
	}
	switch {
	case st == fileTheirs:
		r.log.Warn("resolv.conf was rewritten by someone else while a VPN was active; theirs stays", "path", r.path)
		return r.forget()
	case st == noRecord:
		return nil
	case st == fileOriginal && len(rest) == 0:
		// Nothing of ours in the file: the record stays as one written
		// ahead for the next tunnel.
		return nil
	case len(rest) > 0:
		if rec.Token == "" {
			if rec.Token, err = newToken(); err != nil {
				return err
			}
		}
		text, _ := r.render(rec.Base, rest)
		return r.write(&rec, stamp(text, rec.Token))
	}
	if err := r.restore(rec); err != nil {
		return err
	}
	// The record, naming the original back in place, stays for the next
	// tunnel (written again only if this process did not store it). If
	// that fails the old record stays, naming the same original.
	if err := r.Prime(ctx); err != nil {
		r.log.Warn("DNS journal not written ahead for the next tunnel", "path", r.path, "err", err)
	}
	return nil
}

// Recover implements Backend.
func (r *ResolvConf) Recover(context.Context) error {
	r.settle()
	r.removeTemps()
	rec, st, err := r.load()
	switch {
	case err != nil || st == noRecord:
		return err
	case st == fileOriginal:
		// Recorded ahead (Prime) or put back already: nothing to undo.
		return r.forget()
	case st == fileTheirs && rec.Token != "" && r.blank():
		// Our file renamed into place, its data lost by a power loss.
		r.log.Info("restoring resolv.conf left blank by a crash", "path", r.path)
	case st == fileTheirs:
		r.log.Warn("resolv.conf is neither the original a crashed helper recorded nor what it wrote; keeping the current one", "path", r.path)
		return r.forget()
	default:
		r.log.Info("restoring resolv.conf left by a crashed helper", "path", r.path)
	}
	if err := r.restore(rec); err != nil {
		return err
	}
	return r.forget()
}

// restore puts the original back. The caller drops the journal, or
// records the original as written ahead for the next tunnel (Revert: the
// next connect then syncs nothing on its way).
func (r *ResolvConf) restore(rec resolvRecord) error {
	var err error
	switch {
	case rec.Symlink != "":
		err = replaceWithSymlink(r.path, rec.Symlink)
	case rec.Missing:
		err = os.Remove(r.path)
	case rec.InPlace:
		err = writeInPlace(r.path, rec.Content)
	default:
		err = writeReplaceOwned(r.path, rec.Content, fs.FileMode(rec.Mode), rec.UID, rec.GID)
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.path, err)
	}
	return nil
}

func replaceWithSymlink(path, target string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".link")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// render builds the file for the active links. resolv.conf has no routing
// domains, ports, DNSSEC or DNS over TLS: with full DNS (some link takes the
// default route) only the tunnels' servers are listed, so no lookup leaks to
// the original servers; with split DNS only, the original servers follow the
// tunnels' as a fallback. What cannot be expressed is logged.
func (r *ResolvConf) render(base []byte, links []Link) ([]byte, map[string]Applied) {
	var origServers, origSearch, options []string
	for line := range strings.SplitSeq(string(base), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			origServers = append(origServers, f[1])
		case "search", "domain":
			origSearch = f[1:] // the last one wins, as in glibc
		case "options":
			options = append(options, strings.Join(f[1:], " "))
		}
	}
	applied := map[string]Applied{}
	var servers, search, names []string
	full := false
	for _, l := range links {
		names = append(names, l.Name)
		full = full || l.DefaultRoute
		a := Applied{Servers: []string{}, Search: []string{}}
		switch {
		case l.Transport == "dot":
			r.log.Warn("resolv.conf cannot do DNS over TLS: the link's servers are left out", "link", l.Name)
		default:
			for _, s := range l.Servers {
				if s.Port() != 0 && s.Port() != 53 {
					r.log.Warn("resolv.conf cannot name a port: server left out", "link", l.Name, "server", s.String())
					continue
				}
				if len(servers) == maxNameservers {
					r.log.Warn("resolv.conf takes at most 3 nameservers: server left out", "link", l.Name, "server", s.Addr().String())
					continue
				}
				if t := s.Addr().String(); !slices.Contains(servers, t) {
					servers = append(servers, t)
					a.Servers = append(a.Servers, t)
				}
			}
		}
		if l.DNSSEC == "yes" {
			r.log.Warn("resolv.conf cannot enforce DNSSEC", "link", l.Name)
		}
		if len(l.Routing) > 0 {
			r.log.Warn("resolv.conf has no split DNS: routing domains are not applied", "link", l.Name, "domains", l.Routing)
		}
		for _, d := range l.Search {
			if !slices.Contains(search, d) {
				search = append(search, d)
				a.Search = append(a.Search, d)
			}
		}
		applied[l.Key] = a
	}
	if !full {
		for _, s := range origServers {
			if len(servers) < maxNameservers && !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
	}
	for _, d := range origSearch {
		if !slices.Contains(search, d) {
			search = append(search, d)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by ovpn3go for %s; the previous file comes back when the VPN disconnects.\n", strings.Join(names, ", "))
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, o := range options {
		fmt.Fprintf(&b, "options %s\n", o)
	}
	return []byte(b.String()), applied
}
