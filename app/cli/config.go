package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/app/client"
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
	var tags listArg
	fs.StringVar(&file, "config", "", "profile `FILE` to import (required)")
	fs.StringVar(&file, "c", "", "short for --config")
	fs.StringVar(&name, "name", "", "profile `NAME` (default: the file name)")
	fs.StringVar(&name, "n", "", "short for --name")
	fs.BoolVar(&persistent, "persistent", false, "keep the profile across restarts of the service")
	fs.BoolVar(&persistent, "p", false, "short for --persistent")
	fs.Var(&tags, "tag", "tag the profile with `TAG` (repeatable)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if file == "" || fs.NArg() != 0 {
		return fmt.Errorf("--config FILE is required (and takes no other arguments): %w", errUsage)
	}
	for _, tag := range tags {
		if err := checkUserTag(tag); err != nil {
			return err
		}
		if tag == "" || len(tag) > 128 {
			return fmt.Errorf("--tag %q: a tag has 1 to 128 characters: %w", tag, errUsage)
		}
	}
	if name == "" {
		name = filepath.Base(file)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	prof, err := importFile(ctx, cl, file, name, client.ImportOptions{Persistent: persistent}, tags)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, prof.Path)
	if err := prof.Validate(ctx); err != nil {
		fmt.Fprintf(stderr, "ovpn3 config-import: warning: imported, but not usable yet: %s\n", describeError(err))
	}
	return nil
}

// importFile reads a profile file, embeds the files it names and imports
// it as name; then, as openvpn3 does, persist-tun in the file becomes the
// override the session manager honours, and the tags are added. A failure
// after Import removes the profile again.
func importFile(ctx context.Context, cl *client.Client, file, name string, opts client.ImportOptions, tags []string) (*client.Profile, error) {
	text, err := readProfile(file)
	if err != nil {
		return nil, err
	}
	prof, err := cl.ImportProfile(ctx, name, text, opts)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	var after error
	if hasOption(text, "persist-tun") {
		if err := prof.SetOverride(ctx, "persist-tun", true); err != nil {
			after = fmt.Errorf("set the persist-tun override: %w", err)
		}
	}
	for _, tag := range tags {
		if after != nil {
			break
		}
		if err := prof.AddTag(ctx, tag); err != nil {
			after = fmt.Errorf("tag %q: %w", tag, err)
		}
	}
	if after != nil {
		// Leave nothing half-done behind.
		_ = prof.Remove(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("import %s: %w", file, after)
	}
	return prof, nil
}

// hasOption reports whether the profile text has option name on a line of
// its own (outside inline blocks).
func hasOption(text, name string) bool {
	inline := ""
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if inline != "" {
			if l == "</"+inline+">" {
				inline = ""
			}
			continue
		}
		if strings.HasPrefix(l, "<") && strings.HasSuffix(l, ">") && !strings.HasPrefix(l, "</") {
			inline = l[1 : len(l)-1]
			continue
		}
		if f := strings.Fields(l); len(f) > 0 && strings.TrimPrefix(f[0], "--") == name {
			return true
		}
	}
	return false
}

// hasAnyOption reports whether the profile text has at least one option
// line or inline block: a line that is not blank and not a comment.
func hasAnyOption(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			return true
		}
	}
	return false
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
	"tls-auth": true, "tls-crypt": true, "tls-crypt-v2": true, "secret": true, "pkcs12": true,
}

// readProfile reads a profile and embeds the files it references, relative
// to the profile's directory.
func readProfile(file string) (string, error) {
	text, err := readFile(file)
	if err != nil {
		return "", fmt.Errorf("profile: %w", err)
	}
	if err := checkText(text); err != nil {
		return "", err
	}
	if !hasAnyOption(text) {
		return "", fmt.Errorf("profile %s has no options (empty, or only comments): is this an OpenVPN profile?", file)
	}
	return embedFiles(text, filepath.Dir(file), readFile)
}

// checkText refuses what cannot travel as a D-Bus string, naming the line,
// so the user sees that rather than the bus library's marshalling error.
func checkText(text string) error {
	for i, line := range strings.Split(text, "\n") {
		if strings.IndexByte(line, 0) >= 0 {
			return fmt.Errorf("profile line %d: contains a NUL byte; is this a text profile?", i+1)
		}
		if !utf8.ValidString(line) {
			return fmt.Errorf("profile line %d: not UTF-8 text; convert the file to UTF-8", i+1)
		}
	}
	return nil
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
		if len(f) >= 4 && strings.TrimPrefix(f[0], "--") == "http-proxy" && !proxyAuthWords[f[3]] {
			// "http-proxy host port AUTHFILE [method]": the credentials
			// file becomes an inline block.
			content, err := read(resolve(dir, f[3]))
			if err != nil {
				return "", fmt.Errorf("profile line %d: option 'http-proxy': %w", i+1, err)
			}
			f[3] = "[inline]"
			fmt.Fprintf(&out, "%s\n<http-proxy-user-pass>\n%s</http-proxy-user-pass>\n", strings.Join(f, " "), withNewline(content))
			continue
		}
		if len(f) < 2 || !fileOptions[strings.TrimPrefix(f[0], "--")] || f[1] == "[inline]" ||
			f[0] == "crl-verify" && len(f) > 2 && f[2] == "dir" {
			out.WriteString(line + "\n")
			continue
		}
		opt := strings.TrimPrefix(f[0], "--")
		content, err := read(resolve(dir, f[1]))
		if err != nil {
			return "", fmt.Errorf("profile line %d: option '%s': %w", i+1, opt, err)
		}
		if opt == "pkcs12" {
			// a binary file: inline <pkcs12> blocks hold it in base64
			content = wrapBase64(content)
		}
		fmt.Fprintf(&out, "<%s>\n%s</%s>\n", opt, withNewline(content), opt)
		if (opt == "tls-auth" || opt == "secret") && len(f) > 2 {
			fmt.Fprintf(&out, "key-direction %s\n", f[2])
		}
	}
	return strings.TrimRight(out.String(), "\n") + "\n", nil
}

// proxyAuthWords are the http-proxy third arguments that are not a file.
var proxyAuthWords = map[string]bool{"auto": true, "auto-nct": true, "[inline]": true, "stdin": true}

func resolve(dir, name string) string {
	name = strings.Trim(name, `"'`)
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	return name
}

func withNewline(s string) string {
	if !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

// wrapBase64 encodes b in lines of 64 characters, as PEM does.
func wrapBase64(b string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(b))
	var out strings.Builder
	for len(enc) > 64 {
		out.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	out.WriteString(enc + "\n")
	return out.String()
}

type configEntry struct {
	Path                 dbus.ObjectPath `json:"path"`
	Name                 string          `json:"name"`
	Owner                string          `json:"owner"`
	Imported             string          `json:"imported,omitempty"`
	LastUsed             string          `json:"last_used,omitempty"`
	UsedCount            uint32          `json:"used_count"`
	Valid                bool            `json:"valid"`
	Persistent           bool            `json:"persistent"`
	Tags                 []string        `json:"tags"`
	DCO                  bool            `json:"dco"`
	TransferOwnerSession bool            `json:"transfer_owner_session"`
	LockedDown           bool            `json:"locked_down"`
	PublicAccess         bool            `json:"public_access"`
	ACL                  []string        `json:"acl"`
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
	count := fs.Bool("count", false, "print only the number of profiles")
	var verbose bool
	fs.BoolVar(&verbose, "verbose", false, "more details per profile")
	fs.BoolVar(&verbose, "v", false, "short for --verbose")
	prefix := fs.String("filter-config", "", "only profiles whose name starts with `PREFIX`")
	tag := fs.String("filter-tag", "", "only profiles tagged `TAG`")
	owner := fs.String("filter-owner", "", "only profiles owned by `USER` (name or UID)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	if *tag != "" && *owner != "" {
		return fmt.Errorf("--filter-tag and --filter-owner exclude each other: %w", errUsage)
	}
	if n := btoi(*asJSON) + btoi(*count) + btoi(verbose); n > 1 {
		return fmt.Errorf("--json, --count and --verbose exclude each other: %w", errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	var profiles []*client.Profile
	switch {
	case *tag != "":
		profiles, err = cl.ProfilesByTag(ctx, *tag)
	case *owner != "":
		// A name is looked up here, through NSS (LDAP and sssd users too):
		// the helper is built without cgo and reads /etc/passwd only.
		uid, uerr := resolveUID(*owner)
		if uerr != nil {
			return fmt.Errorf("--filter-owner: %w", uerr)
		}
		profiles, err = cl.ProfilesByOwner(ctx, strconv.FormatUint(uint64(uid), 10))
	default:
		profiles, err = cl.Profiles(ctx)
	}
	if err != nil {
		return fmt.Errorf("list profiles: %w", err)
	}
	entries := []configEntry{}
	for _, prof := range profiles {
		in, err := prof.Info(ctx)
		if err != nil {
			continue // removed meanwhile
		}
		if !strings.HasPrefix(in.Name, *prefix) {
			continue
		}
		e := configEntry{Path: prof.Path, Name: in.Name, UsedCount: in.UsedCount, Valid: in.Valid, Persistent: in.Persistent,
			Tags: userTags(in.Tags), DCO: in.DCO, TransferOwnerSession: in.TransferOwnerSession, LockedDown: in.LockedDown,
			PublicAccess: in.PublicAccess, ACL: []string{}, Owner: userName(in.Owner),
			Imported: formatTime(in.Imported), LastUsed: formatTime(in.LastUsed)}
		for _, u := range in.ACL {
			e.ACL = append(e.ACL, userName(u))
		}
		entries = append(entries, e)
	}
	switch {
	case *count:
		fmt.Fprintln(stdout, len(entries))
		return nil
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	if verbose {
		fmt.Fprintln(tw, "Configuration path\tName\tOwner\tImported\tLast used\tUsed\tValid\tPersistent\tTags")
	} else {
		fmt.Fprintln(tw, "Configuration path\tName\tOwner\tImported\tLast used\tUsed")
	}
	for _, e := range entries {
		last := e.LastUsed
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d", e.Path, e.Name, e.Owner, e.Imported, last, e.UsedCount)
		if verbose {
			tags := strings.Join(e.Tags, ",")
			if tags == "" {
				tags = "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", yesNo(e.Valid), yesNo(e.Persistent), tags)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// lookupConfig finds the one profile the caller means: a path as given,
// or the unique profile with that name.
func lookupConfig(ctx context.Context, cl *client.Client, name string, path dbus.ObjectPath) (*client.Profile, error) {
	if path != "" {
		if !path.IsValid() {
			return nil, fmt.Errorf("%q is not a valid object path", path)
		}
		return cl.Profile(path), nil
	}
	found, err := cl.LookupProfile(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("look up profile %q: %w", name, err)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no configuration profile named %q", name)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("More than one configuration profile was found with the name %q; use --path", name)
}

func runConfigRemove(ctx context.Context, args []string) error {
	fs, byName, byPath := profileFlags("config-remove")
	fs.StringVar(byPath, "config-path", "", "alias of --path")
	force := fs.Bool("force", false, "remove without asking")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	name, path := *byName, *byPath
	if (name == "") == (path == "") || fs.NArg() != 0 {
		return fmt.Errorf("give exactly one of --config NAME or --path PATH: %w", errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	prof, err := lookupConfig(ctx, cl, name, dbus.ObjectPath(path))
	if err != nil {
		return err
	}
	p := prof.Path
	if !*force {
		fmt.Fprintf(stderr, "This will remove the configuration profile %s.\nAre you sure? (enter YES in upper case) ", p)
		answer, _ := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
		if strings.TrimSpace(answer) != "YES" {
			return errors.New("not removed: the answer was not YES")
		}
	}
	if err := prof.Remove(ctx); err != nil {
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
	fs.StringVar(path, "config-path", "", "alias of --path")
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print the options as JSON")
	fs.BoolVar(&asJSON, "j", false, "short for --json")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if (*name == "") == (*path == "") || fs.NArg() != 0 {
		return fmt.Errorf("give exactly one of --config NAME or --path PATH: %w", errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	prof, err := lookupConfig(ctx, cl, *name, dbus.ObjectPath(*path))
	if err != nil {
		return err
	}
	p := prof.Path
	fetch := prof.Fetch
	if asJSON {
		fetch = prof.FetchJSON
	}
	text, err := fetch(ctx)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", p, err)
	}
	if asJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, []byte(text), "", "  "); err != nil {
			return fmt.Errorf("fetch %s: the service sent invalid JSON: %w", p, err)
		}
		out.WriteByte('\n')
		_, err := stdout.Write(out.Bytes())
		return err
	}
	fmt.Fprint(stdout, text)
	return nil
}
