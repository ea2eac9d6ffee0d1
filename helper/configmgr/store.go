package configmgr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// store keeps persistent profiles as <state-dir>/<path id>.json, mode 0600,
// each written atomically (temp file, fsync, rename, fsync of the directory)
// so that a crash leaves either the old or the new file.
type store struct{ dir string }

// tempPrefix names files being written; they are never loaded.
const tempPrefix = ".tmp-"

func (st store) file(p *profile) string { return filepath.Join(st.dir, api.PathID(p.Path)+".json") }

func (st store) save(p *profile) error {
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	// "profile" carries the options in FetchJSON form, as upstream's files
	// do; "config" (the text Fetch returns) is what is read back.
	rec := struct {
		*profile
		Options json.RawMessage `json:"profile,omitempty"`
	}{profile: p}
	if js, err := fetchJSON(p.Config); err == nil {
		rec.Options = json.RawMessage(js)
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode profile %s: %w", p.Path, err)
	}
	final := st.file(p)
	tmp, err := os.CreateTemp(st.dir, tempPrefix+"*.json") // created 0600
	if err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("save profile: %w", err)
	}
	ok = true
	if d, err := os.Open(st.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (st store) remove(p *profile) error {
	if err := os.Remove(st.file(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove profile file: %w", err)
	}
	return nil
}

// maxFileSize bounds a profile file (the profile text is limited to
// profile.MaxProfileSize; the JSON around it and its escaping add some).
const maxFileSize = 16 << 20

// loadAll reads every profile file. Files that cannot be read or make no
// sense are reported through bad and skipped; the others are returned.
// A profile whose text the parser no longer accepts is kept (valid=false)
// rather than lost, and reported through warn.
func (st store) loadAll(bad, warn func(file string, err error)) []*profile {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			bad(st.dir, err)
		}
		return nil
	}
	var out []*profile
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) && e.Type().IsRegular() {
			// A write interrupted before its rename: the real file, if
			// any, is intact; the half-written copy is of no use.
			if err := os.Remove(filepath.Join(st.dir, name)); err != nil {
				bad(name, fmt.Errorf("stale temporary file: %w", err))
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		p, err := st.load(filepath.Join(st.dir, name))
		if err != nil {
			bad(name, err)
			continue
		}
		if problems := assess(p.Config); len(problems) > 0 {
			p.Valid = false
			if _, perr := parseProfile(p.Config); perr != nil {
				warn(name, fmt.Errorf("kept as not valid: %w", perr))
			}
		} else {
			p.Valid = true
		}
		out = append(out, p)
	}
	return out
}

// load reads one file. Only regular files owned by the service's own user
// and writable by nobody else are trusted: the file says who owns the
// profile and who may use it.
func (st store) load(file string) (*profile, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("mode %v: writable by others", fi.Mode().Perm())
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && sys.Uid != uint32(os.Geteuid()) {
		return nil, fmt.Errorf("owned by uid %d, not by the service (uid %d)", sys.Uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	var p profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if !api.IsChildPath(api.PathConfiguration, p.Path) {
		return nil, fmt.Errorf("bad object_path %q", p.Path)
	}
	if api.PathID(p.Path)+".json" != filepath.Base(file) {
		return nil, fmt.Errorf("object_path %q does not match the file name", p.Path)
	}
	if p.Config == "" {
		return nil, errors.New("no profile text (\"config\")")
	}
	// The stored text is served as it is: Fetch after a restart returns
	// exactly what it returned before.
	p.Persistent = true
	p.Name = cleanText(p.Name)
	p.Tags = cleanTags(p.Tags)
	p.ACL = cleanACL(p.ACL)
	p.Overrides = normaliseOverrides(p.Overrides)
	return &p, nil
}

// normaliseOverrides keeps only known keys with values of their type (JSON
// numbers or objects cannot be overrides).
func normaliseOverrides(in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		switch v.(type) {
		case string:
			if overrideTypes[k] == "s" {
				out[k] = v
			}
		case bool:
			if overrideTypes[k] == "b" {
				out[k] = v
			}
		}
	}
	return out
}

// cleanTags drops empty, over-long and duplicate tags.
func cleanTags(in []string) []string {
	out := []string{}
	for _, t := range in {
		t = cleanText(t)
		if t != "" && len(t) <= maxTagLength && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// cleanACL drops duplicate UIDs.
func cleanACL(in []uint32) []uint32 {
	out := []uint32{}
	for _, u := range in {
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}
