package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// boolArg is a flag taking an explicit true/false value, as openvpn3's
// options do ("--dco true"), remembering whether it was given.
type boolArg struct {
	set, value bool
}

func (b *boolArg) String() string {
	if b == nil || !b.set {
		return ""
	}
	return strconv.FormatBool(b.value)
}

func (b *boolArg) Set(s string) error {
	v, err := parseBool(s)
	if err != nil {
		return err
	}
	b.set, b.value = true, v
	return nil
}

// parseBool accepts the spellings openvpn3's CLI accepts.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

// listArg collects a repeatable string flag.
type listArg []string

func (l *listArg) String() string { return strings.Join(*l, ",") }

func (l *listArg) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// systemTagPrefix marks tags reserved for tools (openvpn3-as uses
// "system:openvpn3-as"); the CLI neither shows nor accepts them, like
// openvpn3's.
const systemTagPrefix = "system:"

func userTags(tags []string) []string {
	out := []string{}
	for _, t := range tags {
		if !strings.HasPrefix(t, systemTagPrefix) {
			out = append(out, t)
		}
	}
	return out
}

func checkUserTag(tag string) error {
	if strings.HasPrefix(tag, systemTagPrefix) {
		return fmt.Errorf("tags starting with %q are reserved: %w", systemTagPrefix, errUsage)
	}
	return nil
}
