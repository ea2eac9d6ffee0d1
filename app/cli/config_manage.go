package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/app/client"
)

func init() {
	register("config-manage", "Change or show a configuration profile's name, tags, DCO flag and overrides", runConfigManage)
}

// override is one key of spec §2.2.1: its D-Bus type and the values the
// CLI accepts (nil: any text; checked by check when set).
type override struct {
	key, typ string
	values   []string
	check    func(string) error
	help     string
}

func portValue(s string) error {
	if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return nil
}

func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\n\r") {
		return errors.New("needs a non-empty single-line value")
	}
	return nil
}

// overrides are the keys config-manage offers as --<key> VALUE.
var overrides = []override{
	{key: "server-override", typ: "s", check: nonEmpty, help: "connect to `HOST` instead of the profile's remotes"},
	{key: "port-override", typ: "s", check: portValue, help: "connect to `PORT` instead of the profile's"},
	{key: "proto-override", typ: "s", values: []string{"tcp", "udp"}, help: "`PROTO`: tcp or udp"},
	{key: "ipv6", typ: "s", values: []string{"yes", "no", "default"}, help: "IPv6 in the tunnel: yes, no or default"},
	{key: "persist-tun", typ: "b", help: "keep the tun device across reconnects (true/false)"},
	{key: "log-level", typ: "s", values: []string{"1", "2", "3", "4", "5", "6"}, help: "backend log `LEVEL` 1..6 (instead of the profile's verb)"},
	{key: "dns-fallback-google", typ: "b", help: "use Google DNS when none is pushed (true/false)"},
	{key: "dns-setup-disabled", typ: "b", help: "do not touch DNS settings (true/false)"},
	{key: "dns-scope", typ: "s", values: []string{"global", "tunnel"}, help: "DNS scope: global or tunnel"},
	{key: "dns-sync-lookup", typ: "b", help: "synchronous DNS lookups (true/false)"},
	{key: "auth-fail-retry", typ: "b", help: "treat AUTH_FAILED as temporary (true/false)"},
	{key: "allow-compression", typ: "s", values: []string{"no", "asym", "yes"}, help: "compression: no, asym or yes"},
	{key: "enable-legacy-algorithms", typ: "b", help: "allow non-AEAD data-channel ciphers (true/false)"},
	{key: "tls-version-min", typ: "s", values: []string{"tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3"}, help: "minimum TLS version: tls_1_0 … tls_1_3"},
	{key: "tls-cert-profile", typ: "s", values: []string{"legacy", "preferred", "suiteb"}, help: "certificate profile: legacy, preferred or suiteb"},
	{key: "proxy-host", typ: "s", check: nonEmpty, help: "HTTP proxy `HOST`"},
	{key: "proxy-port", typ: "s", check: portValue, help: "HTTP proxy `PORT`"},
	{key: "proxy-username", typ: "s", check: nonEmpty, help: "HTTP proxy `USER`"},
	{key: "proxy-password", typ: "s", check: nonEmpty, help: "HTTP proxy `PASSWORD`"},
	{key: "proxy-auth-cleartext", typ: "b", help: "allow clear-text proxy authentication (true/false)"},
	{key: "enterprise-profile", typ: "s", check: nonEmpty, help: "enterprise `PROFILE` id"},
	{key: "automatic-restart", typ: "s", values: []string{"no", "on-failure"}, help: "restart crashed sessions: no or on-failure"},
}

func findOverride(key string) *override {
	for i := range overrides {
		if overrides[i].key == key {
			return &overrides[i]
		}
	}
	return nil
}

// value turns the command-line text into the variant SetOverride wants.
func (o *override) value(s string) (dbus.Variant, error) {
	if o.typ == "b" {
		b, err := parseBool(s)
		if err != nil {
			return dbus.Variant{}, fmt.Errorf("--%s: %w", o.key, err)
		}
		return dbus.MakeVariant(b), nil
	}
	if o.values != nil && !slices.Contains(o.values, s) {
		return dbus.Variant{}, fmt.Errorf("--%s: %q is not one of %s", o.key, s, strings.Join(o.values, ", "))
	}
	if o.check != nil {
		if err := o.check(s); err != nil {
			return dbus.Variant{}, fmt.Errorf("--%s: %w", o.key, err)
		}
	}
	return dbus.MakeVariant(s), nil
}

// orderedValue records flags in command-line order.
type orderedValue struct {
	key  string
	dst  *[][2]string
	last string
}

func (v *orderedValue) String() string { return v.last }
func (v *orderedValue) Set(s string) error {
	v.last = s
	*v.dst = append(*v.dst, [2]string{v.key, s})
	return nil
}

func runConfigManage(ctx context.Context, args []string) error {
	fs, byName, byPath := profileFlags("config-manage")
	fs.StringVar(byPath, "config-path", "", "alias of --path")
	var rename string
	var addTags, removeTags, unset listArg
	var dco boolArg
	var show, exists, quiet bool
	fs.StringVar(&rename, "rename", "", "new profile `NAME`")
	fs.StringVar(&rename, "r", "", "short for --rename")
	fs.Var(&addTags, "tag", "add `TAG` (repeatable)")
	fs.Var(&removeTags, "remove-tag", "remove `TAG` (repeatable)")
	fs.Var(&dco, "dco", "use data channel offload for new sessions (true/false)")
	fs.BoolVar(&show, "show", false, "show the profile's settings")
	fs.BoolVar(&show, "s", false, "short for --show")
	fs.BoolVar(&exists, "exists", false, "only check that the profile exists (exit status 0 or 1)")
	fs.BoolVar(&quiet, "quiet", false, "with --exists: print nothing")
	fs.Var(&unset, "unset-override", "remove the override `KEY` (repeatable)")
	var set [][2]string
	for _, o := range overrides {
		fs.Var(&orderedValue{key: o.key, dst: &set}, o.key, o.help)
	}
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if (*byName == "") == (*byPath == "") || fs.NArg() != 0 {
		return fmt.Errorf("give exactly one of --config NAME or --path PATH: %w", errUsage)
	}
	if quiet && !exists {
		return fmt.Errorf("--quiet only goes with --exists: %w", errUsage)
	}
	changes := rename != "" || dco.set || len(addTags)+len(removeTags)+len(unset)+len(set) > 0
	if exists && (changes || show) {
		return fmt.Errorf("--exists cannot be combined with other actions: %w", errUsage)
	}
	if !changes && !show && !exists {
		return fmt.Errorf("nothing to do: give --show or a change: %w", errUsage)
	}
	// Check every value before changing anything.
	values := make([]dbus.Variant, len(set))
	for i, kv := range set {
		v, err := findOverride(kv[0]).value(kv[1])
		if err != nil {
			return fmt.Errorf("%w: %w", err, errUsage)
		}
		values[i] = v
	}
	for _, k := range unset {
		if findOverride(k) == nil {
			return fmt.Errorf("--unset-override: %q is not an override key: %w", k, errUsage)
		}
	}
	for _, tag := range addTags {
		if err := checkUserTag(tag); err != nil {
			return err
		}
	}
	for _, tag := range removeTags {
		if err := checkUserTag(tag); err != nil {
			return err
		}
	}

	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	prof, err := lookupConfig(ctx, cl, *byName, dbus.ObjectPath(*byPath))
	if exists {
		if err == nil {
			err = profileExists(ctx, prof)
		}
		if err != nil {
			if quiet {
				return errSilent
			}
			return err
		}
		if !quiet {
			fmt.Fprintln(stdout, "Configuration profile exists")
		}
		return nil
	}
	if err != nil {
		return err
	}
	call := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if rename != "" {
		if err := prof.Rename(ctx, rename); err != nil {
			return fmt.Errorf("rename: %w", err)
		}
		fmt.Fprintf(stdout, "Configuration renamed to %q\n", rename)
	}
	if dco.set {
		if err := prof.SetDCO(ctx, dco.value); err != nil {
			return fmt.Errorf("--dco: %w", err)
		}
	}
	for _, tag := range addTags {
		if err := call("add tag "+strconv.Quote(tag), prof.AddTag(ctx, tag)); err != nil {
			return err
		}
	}
	for _, tag := range removeTags {
		if err := call("remove tag "+strconv.Quote(tag), prof.RemoveTag(ctx, tag)); err != nil {
			return err
		}
	}
	for i, kv := range set {
		if err := call("--"+kv[0], prof.SetOverride(ctx, kv[0], values[i].Value())); err != nil {
			return err
		}
	}
	for _, k := range unset {
		if err := call("--unset-override "+k, prof.UnsetOverride(ctx, k)); err != nil {
			return err
		}
	}
	if changes && !show {
		fmt.Fprintln(stdout, "Configuration updated.")
	}
	if show {
		return showConfig(ctx, prof)
	}
	return nil
}

// profileExists asks for the profile's properties, as openvpn3's CLI does.
func profileExists(ctx context.Context, prof *client.Profile) error {
	props, err := configProps(ctx, prof)
	if err != nil {
		return fmt.Errorf("configuration profile %s: %w", prof.Path, err)
	}
	if len(props) == 0 {
		return fmt.Errorf("configuration profile %s: not found", prof.Path)
	}
	return nil
}

// configProps reads every property the caller may read (Profile.Info
// would hide which ones were missing).
func configProps(ctx context.Context, prof *client.Profile) (map[string]dbus.Variant, error) {
	props, err := prof.Properties(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", prof.Path, err)
	}
	return props, nil
}

// propText renders one property for people; missing ones (not readable by
// this user) show as "-".
func propText(props map[string]dbus.Variant, name string) string {
	v, ok := props[name]
	if !ok {
		return "-"
	}
	switch x := v.Value().(type) {
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return x
	case uint64:
		if strings.HasSuffix(name, "_timestamp") {
			if x == 0 {
				return "-"
			}
			return timestamp(x)
		}
		return strconv.FormatUint(x, 10)
	case uint32:
		if name == "owner" {
			return userName(x)
		}
		return strconv.FormatUint(uint64(x), 10)
	case []string:
		if name == "tags" {
			x = userTags(x)
		}
		if len(x) == 0 {
			return "-"
		}
		return strings.Join(x, ", ")
	case []uint32:
		if len(x) == 0 {
			return "-"
		}
		names := make([]string, len(x))
		for i, u := range x {
			names[i] = userName(u)
		}
		return strings.Join(names, ", ")
	}
	return fmt.Sprint(v.Value())
}

func showConfig(ctx context.Context, prof *client.Profile) error {
	p := prof.Path
	props, err := configProps(ctx, prof)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", propText(props, "name"))
	fmt.Fprintf(tw, "Path:\t%s\n", p)
	for _, row := range [][2]string{{"Owner", "owner"}, {"Imported", "import_timestamp"}, {"Last used", "last_used_timestamp"},
		{"Used", "used_count"}, {"Persistent", "persistent"}, {"Single use", "single_use"}, {"Valid", "valid"},
		{"Read only", "readonly"}, {"DCO", "dco"}, {"Tags", "tags"}} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], propText(props, row[1]))
	}
	var ov map[string]dbus.Variant
	if v, ok := props["overrides"]; ok {
		_ = dbus.Store([]any{v.Value()}, &ov)
	}
	if len(ov) == 0 {
		fmt.Fprintln(tw, "Overrides:\t-")
	} else {
		keys := make([]string, 0, len(ov))
		for k := range ov {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(tw, "Overrides:\t")
		for _, k := range keys {
			val := fmt.Sprint(ov[k].Value())
			if k == "proxy-password" {
				val = "(set)" // a secret: never shown
			}
			fmt.Fprintf(tw, "  %s:\t%s\n", k, val)
		}
	}
	return tw.Flush()
}
