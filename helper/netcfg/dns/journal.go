package dns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// JournalDir is the backends' directory in the state directory (a
// directory of its own: the configuration manager owns the *.json files at
// the top).
const JournalDir = "dns"

// journal is one JSON file in the state directory, replaced atomically and
// synced before the change it describes is made, so that a helper killed at
// any point finds either the old or the new record.
type journal struct{ path string }

// load reads the record into v; ok is false when there is none.
func (j journal) load(v any) (ok bool, err error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read journal: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("journal %s: %w", j.path, err)
	}
	return true, nil
}

// store replaces the record, synced (file and directory) before it
// returns.
func (j journal) store(v any) error { return j.write(v, true) }

// storeUnsynced replaces the record atomically for a process crash only:
// for a record of what a machine crash undoes anyway (see Resolved).
func (j journal) storeUnsynced(v any) error { return j.write(v, false) }

func (j journal) write(v any, durable bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := writeReplace(j.path, b, 0o600, durable); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (j journal) remove() error {
	if err := j.removeUnsynced(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(j.path))
}

func (j journal) removeUnsynced() error {
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// writeReplace writes b to a temporary file next to path and renames it
// over path; durable syncs the file before and the directory after.
func writeReplace(path string, b []byte, mode fs.FileMode, durable bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && durable {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := syncFile(d); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// syncFile is (*os.File).Sync; tests count the syncs through it.
var syncFile = (*os.File).Sync
