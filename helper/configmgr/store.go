package configmgr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// store keeps persistent profiles as <state-dir>/<path id>.json, mode 0600,
// each written atomically (temp file, fsync, rename, fsync of the directory)
// so that a crash leaves either the old or the new file.
type store struct{ dir string }

func (st store) file(p *profile) string { return filepath.Join(st.dir, api.PathID(p.Path)+".json") }

func (st store) save(p *profile) error {
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode profile %s: %w", p.Path, err)
	}
	final := st.file(p)
	tmp, err := os.CreateTemp(st.dir, ".tmp-*.json") // created 0600
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

// loadAll reads every profile file. Files that cannot be read or make no
// sense are reported through bad and skipped.
func (st store) loadAll(bad func(file string, err error)) []*profile {
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
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		p, err := st.load(filepath.Join(st.dir, name))
		if err != nil {
			bad(name, err)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (st store) load(file string) (*profile, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
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
	pr, err := parseProfile(p.Config)
	if err != nil {
		return nil, fmt.Errorf("stored profile: %w", err)
	}
	p.Config, p.Valid = pr.text, pr.valid
	p.Persistent = true
	p.Name = cleanText(p.Name)
	p.Overrides = normaliseOverrides(p.Overrides)
	return &p, nil
}

// normaliseOverrides keeps only string and bool values (JSON numbers or
// objects cannot be overrides).
func normaliseOverrides(in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		switch v.(type) {
		case string, bool:
			out[k] = v
		}
	}
	return out
}
