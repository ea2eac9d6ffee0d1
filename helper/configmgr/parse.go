package configmgr

import (
	"encoding/json"
	"errors"
	"strings"

	ovpnprofile "github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// parsed is the result of checking a profile text.
type parsed struct {
	text     string                // canonical text to store and Fetch
	valid    bool                  // complete enough to connect
	problems []ovpnprofile.Problem // why it is not valid: whole-profile gaps found by the parser
	profile  *ovpnprofile.Profile  // the parsed profile; when not valid, as far as it was built
}

// parseProfile checks a profile. Profiles with errors on a line are refused
// (err names every such line); profiles that only lack something as a whole
// (no remote, no CA, …) are accepted as not valid, as upstream imports them
// with valid=false.
func parseProfile(text string) (parsed, error) {
	p, err := ovpnprofile.Parse(text)
	if err == nil {
		return parsed{text: p.Render(), valid: true, profile: p}, nil
	}
	var pe *ovpnprofile.ParseError
	if !errors.As(err, &pe) {
		return parsed{}, err
	}
	if pe.Partial == nil { // a problem on a line (or a limit): refused
		msgs := make([]string, len(pe.Problems))
		for i, pr := range pe.Problems {
			msgs[i] = pr.Error()
		}
		return parsed{}, errors.New(strings.Join(msgs, "; "))
	}
	text = strings.ReplaceAll(strings.TrimPrefix(text, "\uFEFF"), "\r\n", "\n")
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return parsed{text: text, problems: pe.Problems, profile: pe.Partial}, nil
}

// Texts of Validate (spec §2.2, §4.3).
const (
	textMissingPrefix = "Configuration profile is missing required options: "
	textServerLocked  = "Server locked profiles are unsupported"
	textInvalidPrefix = "Configuration profile is invalid: "
)

// coveredByMissing maps a required option Validate names to the parser's
// gap saying the same thing, so Validate does not report one gap twice.
var coveredByMissing = map[string]ovpnprofile.Kind{
	"--ca":                     ovpnprofile.KindNoCA,
	"--client or --tls-client": ovpnprofile.KindNotClient,
	"--dev":                    ovpnprofile.KindNoDev,
	"--remote":                 ovpnprofile.KindNoRemote,
}

// assess returns every reason a stored profile text cannot be used, in
// Validate's words, all at once: the required options it lacks (one
// message listing them together), a server-locked profile, and any other
// whole-profile problem the parser found. No reasons: the profile is valid.
func assess(text string) []string {
	var out []string
	missing, locked := checkRequired(text)
	if locked {
		out = append(out, textServerLocked)
	}
	if len(missing) > 0 {
		out = append(out, textMissingPrefix+strings.Join(missing, ", "))
	}
	pr, err := parseProfile(text)
	var extra []string
	if err != nil {
		extra = append(extra, err.Error())
	}
next:
	for _, gap := range pr.problems {
		for _, m := range missing {
			if gap.Kind == coveredByMissing[m] {
				continue next
			}
		}
		extra = append(extra, gap.Error())
	}
	if len(extra) > 0 {
		out = append(out, textInvalidPrefix+strings.Join(extra, "; "))
	}
	return out
}

// repeatable options are always exported by FetchJSON as an array of
// argument arrays, however often they occur, so that a client knows the
// shape of each key in advance.
var repeatable = map[string]bool{
	"remote": true, "route": true, "route-ipv6": true, "pull-filter": true, "setenv": true,
	"dhcp-option": true, "ignore-unknown-option": true, "http-proxy-option": true, "connection": true,
	"peer-fingerprint": true, "dns": true, "x509-track": true,
}

// fetchJSON renders a profile as upstream's FetchJSON does: option name →
// array of arguments; an option that may repeat (or does) → array of such
// arrays; inline blocks → array with the block's content. Access Server
// metadata (comments) is not an option and never appears.
func fetchJSON(text string) (string, error) {
	pr, err := parseProfile(text)
	if err != nil {
		return "", err
	}
	if pr.profile == nil { // not reached: parseProfile refuses or returns a profile
		return "{}", nil
	}
	count := map[string]int{}
	for _, o := range pr.profile.Options {
		count[o.Name]++
	}
	out := map[string]any{}
	for _, o := range pr.profile.Options {
		args := o.Args
		if args == nil {
			args = []string{}
		}
		if count[o.Name] == 1 && !repeatable[o.Name] {
			out[o.Name] = args
			continue
		}
		prev, _ := out[o.Name].([][]string)
		out[o.Name] = append(prev, args)
	}
	b, err := json.Marshal(out)
	return string(b), err
}
