package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

func init() {
	register("config-import", "Import a configuration profile", runConfigImport)
	register("configs-list", "List the configuration profiles you may use", runConfigsList)
	register("config-remove", "Remove a configuration profile", runConfigRemove)
	register("config-dump", "Show the content of a configuration profile", runConfigDump)
}

// maxFileSize bounds the profile and every file it references.
const maxFileSize = 1 << 20

func runConfigImport(ctx context.Context, args []string) error {
	fs := newFlags("config-import")
	var file, name string
	var persistent bool
	fs.StringVar(&file, "config", "", "profile `FILE` to import (required)")
	fs.StringVar(&file, "c", "", "short for --config")
	fs.StringVar(&name, "name", "", "profile `NAME` (default: the file name)")
	fs.StringVar(&name, "n", "", "short for --name")
	fs.BoolVar(&persistent, "persistent", false, "keep the profile across restarts of the service")
	fs.BoolVar(&persistent, "p", false, "short for --persistent")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if file == "" || fs.NArg() != 0 {
		return fmt.Errorf("--config FILE is required (and takes no other arguments): %w", errUsage)
	}
	text, err := readProfile(file)
	if err != nil {
		return err
	}
	if name == "" {
		name = filepath.Base(file)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var path dbus.ObjectPath
	err = callMethod(ctx, conn, api.ServiceConfiguration, api.PathConfiguration, api.InterfaceConfiguration, "Import",
		[]any{name, text, false, persistent}, &path)
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// readFile reads a regular file of bounded size.
func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return string(b), nil
}

// fileOptions are the options whose first argument names a file that the
// CLI embeds as an inline block: the services cannot (and must not) read
// the user's files.
var fileOptions = map[string]bool{
	"ca": true, "cert": true, "key": true, "extra-certs": true, "dh": true, "crl-verify": true,
	"tls-auth": true, "tls-crypt": true, "tls-crypt-v2": true, "secret": true,
}

// readProfile reads a profile and embeds the files it references, relative
// to the profile's directory.
func readProfile(file string) (string, error) {
	text, err := readFile(file)
	if err != nil {
		return "", fmt.Errorf("profile: %w", err)
	}
	return embedFiles(text, filepath.Dir(file), readFile)
}

func embedFiles(text, dir string, read func(string) (string, error)) (string, error) {
	var out strings.Builder
	inline := ""
	for i, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if inline != "" {
			if trimmed == "</"+inline+">" {
				inline = ""
			}
			out.WriteString(line + "\n")
			continue
		}
		if strings.HasPrefix(trimmed, "<") && strings.HasSuffix(trimmed, ">") && !strings.HasPrefix(trimmed, "</") {
			inline = trimmed[1 : len(trimmed)-1]
			out.WriteString(line + "\n")
			continue
		}
		f := strings.Fields(trimmed)
		if len(f) < 2 || !fileOptions[strings.TrimPrefix(f[0], "--")] || f[1] == "[inline]" ||
			f[0] == "crl-verify" && len(f) > 2 && f[2] == "dir" {
			out.WriteString(line + "\n")
			continue
		}
		opt := strings.TrimPrefix(f[0], "--")
		name := strings.Trim(f[1], `"'`)
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		content, err := read(name)
		if err != nil {
			return "", fmt.Errorf("profile line %d: option '%s': %w", i+1, opt, err)
		}
		if !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		fmt.Fprintf(&out, "<%s>\n%s</%s>\n", opt, content, opt)
		if (opt == "tls-auth" || opt == "secret") && len(f) > 2 {
			fmt.Fprintf(&out, "key-direction %s\n", f[2])
		}
	}
	return strings.TrimRight(out.String(), "\n") + "\n", nil
}

type configEntry struct {
	Path         dbus.ObjectPath `json:"path"`
	Name         string          `json:"name"`
	Owner        string          `json:"owner"`
	Imported     string          `json:"imported,omitempty"`
	LastUsed     string          `json:"last_used,omitempty"`
	UsedCount    uint32          `json:"used_count"`
	Persistent   bool            `json:"persistent"`
	Tags         []string        `json:"tags"`
	PublicAccess bool            `json:"public_access"`
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func timestamp(ts uint64) string {
	if ts == 0 {
		return ""
	}
	return time.Unix(int64(ts), 0).Format("2006-01-02 15:04:05")
}

func runConfigsList(ctx context.Context, args []string) error {
	fs := newFlags("configs-list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var paths []dbus.ObjectPath
	if err := callMethod(ctx, conn, api.ServiceConfiguration, api.PathConfiguration, api.InterfaceConfiguration,
		"FetchAvailableConfigs", nil, &paths); err != nil {
		return fmt.Errorf("list profiles: %w", err)
	}
	entries := []configEntry{}
	for _, p := range paths {
		var props map[string]dbus.Variant
		if err := callMethod(ctx, conn, api.ServiceConfiguration, p, api.InterfaceProperties, "GetAll",
			[]any{api.InterfaceConfiguration}, &props); err != nil {
			continue // removed meanwhile
		}
		e := configEntry{Path: p, Tags: []string{}}
		_ = dbus.Store([]any{props["name"].Value()}, &e.Name)
		var owner uint32
		var imported, used uint64
		_ = dbus.Store([]any{props["owner"].Value()}, &owner)
		_ = dbus.Store([]any{props["import_timestamp"].Value()}, &imported)
		_ = dbus.Store([]any{props["last_used_timestamp"].Value()}, &used)
		_ = dbus.Store([]any{props["used_count"].Value()}, &e.UsedCount)
		_ = dbus.Store([]any{props["persistent"].Value()}, &e.Persistent)
		_ = dbus.Store([]any{props["public_access"].Value()}, &e.PublicAccess)
		if v, ok := props["tags"]; ok {
			_ = dbus.Store([]any{v.Value()}, &e.Tags)
		}
		e.Owner, e.Imported, e.LastUsed = userName(owner), timestamp(imported), timestamp(used)
		entries = append(entries, e)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Configuration path\tName\tOwner\tImported\tLast used\tUsed")
	for _, e := range entries {
		last := e.LastUsed
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", e.Path, e.Name, e.Owner, e.Imported, last, e.UsedCount)
	}
	return tw.Flush()
}

// lookupConfig finds the one profile path the caller means: a path as
// given, or the unique profile with that name.
func lookupConfig(ctx context.Context, conn *dbus.Conn, name string, path dbus.ObjectPath) (dbus.ObjectPath, error) {
	if path != "" {
		if !path.IsValid() {
			return "", fmt.Errorf("%q is not a valid object path", path)
		}
		return path, nil
	}
	var paths []dbus.ObjectPath
	if err := callMethod(ctx, conn, api.ServiceConfiguration, api.PathConfiguration, api.InterfaceConfiguration,
		"LookupConfigName", []any{name}, &paths); err != nil {
		return "", fmt.Errorf("look up profile %q: %w", name, err)
	}
	switch len(paths) {
	case 0:
		return "", fmt.Errorf("no configuration profile named %q", name)
	case 1:
		return paths[0], nil
	}
	return "", fmt.Errorf("More than one configuration profile was found with the name %q; use --path", name)
}

func runConfigRemove(ctx context.Context, args []string) error {
	fs, byName, byPath := profileFlags("config-remove")
	fs.Bool("force", false, "accepted for compatibility; ovpn3 never asks")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	name, path := *byName, *byPath
	if (name == "") == (path == "") || fs.NArg() != 0 {
		return fmt.Errorf("give exactly one of --config NAME or --path PATH: %w", errUsage)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := lookupConfig(ctx, conn, name, dbus.ObjectPath(path))
	if err != nil {
		return err
	}
	if err := callMethod(ctx, conn, api.ServiceConfiguration, p, api.InterfaceConfiguration, "Remove", nil); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	fmt.Fprintln(stdout, "Configuration removed.")
	return nil
}

// profileFlags adds the --config NAME / --path PATH pair that selects one
// profile.
func profileFlags(name string) (fs *flag.FlagSet, byName, byPath *string) {
	fs = newFlags(name)
	byName, byPath = new(string), new(string)
	fs.StringVar(byName, "config", "", "profile `NAME`")
	fs.StringVar(byName, "c", "", "short for --config")
	fs.StringVar(byPath, "path", "", "profile object `PATH`")
	fs.StringVar(byPath, "o", "", "short for --path")
	return fs, byName, byPath
}

func runConfigDump(ctx context.Context, args []string) error {
	fs, name, path := profileFlags("config-dump")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if (*name == "") == (*path == "") || fs.NArg() != 0 {
		return fmt.Errorf("give exactly one of --config NAME or --path PATH: %w", errUsage)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := lookupConfig(ctx, conn, *name, dbus.ObjectPath(*path))
	if err != nil {
		return err
	}
	var text string
	if err := callMethod(ctx, conn, api.ServiceConfiguration, p, api.InterfaceConfiguration, "Fetch", nil, &text); err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	fmt.Fprint(stdout, text)
	return nil
}
