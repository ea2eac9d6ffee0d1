// Package journal is netcfg's write-ahead record of every change it makes
// to the system (devices, addresses, routes, rules, DNS settings), kept in
// the helper's state directory so that a crashed helper can undo what it
// left behind when it starts again.
//
// A Journal is one owner's record (one device, or the routes shared by all
// sessions): a small JSON file rewritten on every change, in place while it
// fits in one page, else atomically (temporary file, rename); see
// writeLocked. The rule for callers is
// simple: Add an entry before applying the change, Drop it after undoing it,
// and Remove the journal once everything in it is undone. Undo actions must
// be idempotent: after a crash the journal may name a change that never
// happened, or one that was already undone.
//
// What a journal records (links, addresses, routes) lives in the kernel, so
// its writes need no fsync: a crashed helper's writes are in the page
// cache for the next run, and a crash of the machine takes the recorded
// state with it. The store notes the boot it belongs to (the kernel's
// boot_id, written durably once per boot) and discards, at Open, the
// journals of an earlier boot, which may be stale or torn and describe
// nothing that still exists. (Two fsyncs per change were up to a third of
// a session's connect time on a busy disk: about ten changes per Establish.)
//
// Recovery (Store.Recover) replays every journal left in the directory,
// newest entry first, through the undo function registered for each entry's
// kind. Packages other than netcfg (the DNS backends) register their own
// kinds with Undoers.Register and keep their own undo data in Data.
package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Entry is one recorded change.
type Entry struct {
	// ID names the entry inside its journal (unique there); Drop uses it.
	ID string `json:"id"`
	// Kind selects the undo function, e.g. "tun.route" or "dns.resolvconf".
	Kind string `json:"kind"`
	// Data is whatever the undo function needs, as JSON.
	Data json.RawMessage `json:"data"`
}

// file is the on-disk form of a journal.
type file struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
}

const (
	fileVersion = 1
	suffix      = ".journal"
	bootFile    = "boot_id" // the boot the journals belong to
)

// bootIDPath is the kernel's random id of the running boot.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// Store is the journal directory.
type Store struct {
	dir string

	mu   sync.Mutex
	open map[string]bool // journals handed out and not yet removed
}

// Open returns the store in dir, creating the directory (0700) if needed.
// Journals of an earlier boot are deleted (see the package comment); a
// directory without a boot note (an older helper's, whose writes were all
// synced) keeps its journals for Recover.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return nil, fmt.Errorf("journal: boot id: %w", err)
	}
	boot := strings.TrimSpace(string(b))
	noted, err := os.ReadFile(filepath.Join(dir, bootFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	case strings.TrimSpace(string(noted)) == boot:
		return &Store{dir: dir, open: map[string]bool{}}, nil
	default:
		if err := dropEarlierBoot(dir); err != nil {
			return nil, err
		}
	}
	if err := writeAtomic(filepath.Join(dir, bootFile), []byte(boot+"\n"), true); err != nil {
		return nil, fmt.Errorf("journal: note the boot: %w", err)
	}
	return &Store{dir: dir, open: map[string]bool{}}, nil
}

// dropEarlierBoot deletes the journals (and temporary files) of a boot that
// has ended: the kernel state they recorded ended with it.
func dropEarlierBoot(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("journal directory: %w", err)
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, suffix) || strings.HasPrefix(n, ".") && strings.Contains(n, suffix+".tmp") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("journal: drop %s of an earlier boot: %w", n, err)
			}
		}
	}
	return nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// validName keeps journal names to file-name-safe characters.
func validName(name string) bool {
	if name == "" || len(name) > 200 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(name, ".")
}

// Create starts an empty journal called name (letters, digits, '_', '-',
// '.'). A journal of that name left over from a crash must have been
// recovered first; Create refuses to overwrite it.
func (s *Store) Create(name string) (*Journal, error) {
	if !validName(name) {
		return nil, fmt.Errorf("journal: invalid name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[name] {
		return nil, fmt.Errorf("journal %q: already open", name)
	}
	path := filepath.Join(s.dir, name+suffix)
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("journal %q: a journal from an earlier run is still there (not recovered)", name)
	}
	j := &Journal{store: s, name: name, path: path}
	if err := j.writeLocked(); err != nil {
		return nil, err
	}
	s.open[name] = true
	return j, nil
}

// Journal is one owner's record of changes.
type Journal struct {
	store *Store
	name  string
	path  string

	mu      sync.Mutex
	entries []Entry
	removed bool
	size    int // the file's length
}

// Name is the journal's name.
func (j *Journal) Name() string { return j.name }

// Add records an entry and returns once it is on disk. Call it before
// applying the change. An entry with the same ID replaces the earlier one
// in place (for a change that is modified, e.g. a route that moved).
func (j *Journal) Add(id, kind string, data any) error {
	return j.AddAll([]Planned{{ID: id, Kind: kind, Data: data}})
}

// Planned is one change AddAll records.
type Planned struct {
	ID, Kind string
	Data     any
}

// AddAll records several changes with one write: a caller about to make
// them one after the other need not write before each (the journal may
// name a change that never happened; undo actions ignore those). An id
// already present is replaced, as with Add.
func (j *Journal) AddAll(changes []Planned) error {
	add := make([]Entry, len(changes))
	for i, c := range changes {
		raw, err := json.Marshal(c.Data)
		if err != nil {
			return fmt.Errorf("journal %s: encode %s: %w", j.name, c.Kind, err)
		}
		add[i] = Entry{ID: c.ID, Kind: c.Kind, Data: raw}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.removed {
		return fmt.Errorf("journal %s: already removed", j.name)
	}
	old := slices.Clone(j.entries)
	for _, e := range add {
		if i := slices.IndexFunc(j.entries, func(x Entry) bool { return x.ID == e.ID }); i >= 0 {
			j.entries[i] = e
		} else {
			j.entries = append(j.entries, e)
		}
	}
	if err := j.writeLocked(); err != nil {
		j.entries = old
		return err
	}
	return nil
}

// Drop forgets the entry id (after its change was undone). Unknown ids are
// ignored.
func (j *Journal) Drop(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.removed {
		return nil
	}
	i := slices.IndexFunc(j.entries, func(e Entry) bool { return e.ID == id })
	if i < 0 {
		return nil
	}
	old := slices.Clone(j.entries)
	j.entries = slices.Delete(j.entries, i, i+1)
	if err := j.writeLocked(); err != nil {
		j.entries = old
		return err
	}
	return nil
}

// Entries returns a copy of the current entries, oldest first.
func (j *Journal) Entries() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// Remove deletes the journal: everything it recorded is undone.
func (j *Journal) Remove() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.removed {
		return nil
	}
	if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal %s: remove: %w", j.name, err)
	}
	j.removed = true
	j.store.mu.Lock()
	delete(j.store.open, j.name)
	j.store.mu.Unlock()
	return nil
}

// inPlaceMax is the longest journal file rewritten in place: one page.
const inPlaceMax = 4096

// writeLocked writes the entries. A journal that fits in one page, as one
// device's does, is overwritten in place with one pwrite, padded with
// spaces (valid JSON) to the file's length: a process killed during the
// call leaves the whole page old or new (the kernel checks for a fatal
// signal only between pages, and the data are in memory), and a crash of
// the machine discards the journal anyway (see the package comment).
// Replacing the file by rename instead costs ext4 a flush of the new
// file's data (auto_da_alloc): 0.15-0.35 ms here, 1-2 ms on a busy disk,
// on the connect's path. A longer journal is replaced by rename.
func (j *Journal) writeLocked() error {
	data, err := json.Marshal(file{Version: fileVersion, Entries: j.entries})
	if err != nil {
		return fmt.Errorf("journal %s: encode: %w", j.name, err)
	}
	if n := max(j.size, len(data)); j.size > 0 && n <= inPlaceMax {
		padded := append(data, bytes.Repeat([]byte{' '}, n-len(data))...)
		if err := overwrite(j.path, padded); err == nil {
			j.size = n
			return nil
		}
		// Whatever the failed write left, the rename replaces it.
	}
	if err := writeAtomic(j.path, data, false); err != nil {
		return fmt.Errorf("journal %s: %w", j.name, err)
	}
	j.size = len(data)
	return nil
}

// overwrite writes data over the beginning of the existing file at path
// in one call.
func overwrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n, err := f.WriteAt(data, 0)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomic replaces path with data so that a crashed process leaves
// either the old or the new content, never a mix; durable also syncs file
// and directory, for a crash of the machine.
func writeAtomic(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write: %w", err)
	}
	if durable {
		if err := syncFile(tmp); err != nil {
			tmp.Close()
			return fmt.Errorf("sync: %w", err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

// syncFile is (*os.File).Sync; tests count the calls.
var syncFile = (*os.File).Sync

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := syncFile(d); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// UndoFunc undoes one entry of its kind. It must succeed (return nil) when
// the change is already gone or never happened.
type UndoFunc func(ctx context.Context, e Entry) error

// Undoers maps entry kinds to their undo functions.
type Undoers struct {
	mu sync.Mutex
	m  map[string]UndoFunc
}

// Register sets the undo function for kind, replacing an earlier one.
func (u *Undoers) Register(kind string, fn UndoFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]UndoFunc{}
	}
	u.m[kind] = fn
}

func (u *Undoers) get(kind string) UndoFunc {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[kind]
}

// Leftover is a journal found on disk by Pending.
type Leftover struct {
	Name    string
	Entries []Entry
}

// Pending lists the journals on disk that are not open in this process
// (left by an earlier run), in name order.
func (s *Store) Pending() ([]Leftover, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "*"+suffix))
	if err != nil {
		return nil, fmt.Errorf("journal: list: %w", err)
	}
	slices.Sort(names)
	var out []Leftover
	var errs []error
	for _, path := range names {
		name := strings.TrimSuffix(filepath.Base(path), suffix)
		s.mu.Lock()
		open := s.open[name]
		s.mu.Unlock()
		if open {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("journal %s: read: %w", name, err))
			continue
		}
		var f file
		if err := json.Unmarshal(data, &f); err != nil {
			errs = append(errs, fmt.Errorf("journal %s: decode: %w", name, err))
			continue
		}
		if f.Version != fileVersion {
			errs = append(errs, fmt.Errorf("journal %s: unknown version %d", name, f.Version))
			continue
		}
		out = append(out, Leftover{Name: name, Entries: f.Entries})
	}
	return out, errors.Join(errs...)
}

// Recover undoes every journal left by an earlier run, each newest entry
// first, and deletes the journals whose entries were all undone. Entries
// whose undo failed, or whose kind has no undo function, stay on disk for
// the next attempt; the error names them. Unreadable journal files are
// reported and left in place.
func (s *Store) Recover(ctx context.Context, undo *Undoers) error {
	left, err := s.Pending()
	errs := []error{err}
	for _, l := range left {
		var keep []Entry
		for _, e := range slices.Backward(l.Entries) {
			fn := undo.get(e.Kind)
			if fn == nil {
				errs = append(errs, fmt.Errorf("journal %s: entry %s: no undo for kind %q", l.Name, e.ID, e.Kind))
				keep = append(keep, e)
				continue
			}
			if err := fn(ctx, e); err != nil {
				errs = append(errs, fmt.Errorf("journal %s: undo %s %s: %w", l.Name, e.Kind, e.ID, err))
				keep = append(keep, e)
			}
		}
		path := filepath.Join(s.dir, l.Name+suffix)
		if len(keep) == 0 {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("journal %s: remove: %w", l.Name, err))
			}
			continue
		}
		slices.Reverse(keep)
		data, err := json.Marshal(file{Version: fileVersion, Entries: keep})
		if err == nil {
			err = writeAtomic(path, data, false)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("journal %s: rewrite: %w", l.Name, err))
		}
	}
	return errors.Join(errs...)
}
