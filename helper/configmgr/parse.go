package configmgr

import (
	"encoding/json"
	"errors"
	"strings"

	ovpnprofile "github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// parsed is the result of checking a profile text.
type parsed struct {
	text     string               // canonical text to store and Fetch
	valid    bool                 // complete enough to connect
	problems string               // why it is not valid
	profile  *ovpnprofile.Profile // nil when not valid
}

// parseProfile checks a profile. Profiles with errors on a line are refused
// (err names the line); profiles that only lack something as a whole (no
// remote, no CA, …) are accepted as not valid, as upstream imports them
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
	msgs := make([]string, len(pe.Problems))
	whole := true
	for i, pr := range pe.Problems {
		msgs[i] = pr.Error()
		whole = whole && pr.Line == 0
	}
	joined := strings.Join(msgs, "; ")
	if !whole || strings.Contains(text, "\x00") {
		return parsed{}, errors.New(joined)
	}
	text = strings.ReplaceAll(strings.TrimPrefix(text, "\uFEFF"), "\r\n", "\n")
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return parsed{text: text, problems: joined}, nil
}

// fetchJSON renders a profile as upstream's FetchJSON does: option name →
// array of arguments; an option given several times → array of such
// arrays; inline blocks → array with the block's content.
func fetchJSON(text string) (string, error) {
	pr, err := parseProfile(text)
	if err != nil {
		return "", err
	}
	if pr.profile == nil {
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
		if count[o.Name] == 1 {
			out[o.Name] = args
			continue
		}
		prev, _ := out[o.Name].([][]string)
		out[o.Name] = append(prev, args)
	}
	b, err := json.Marshal(out)
	return string(b), err
}
