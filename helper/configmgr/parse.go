package configmgr

import (
	"fmt"
	"strings"
)

// maxProfileSize bounds what a caller may import.
const maxProfileSize = 512 << 10

// checkProfile is the interim profile check until helper/openvpn/profile
// lands: it rejects empty or oversized text and unterminated inline blocks,
// naming the line, and keeps the text (normalised line endings) as the
// canonical form.
func checkProfile(text string) (string, error) {
	if len(text) > maxProfileSize {
		return "", fmt.Errorf("profile is larger than %d bytes", maxProfileSize)
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	open, openLine, options := "", 0, 0
	for i, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if open != "" {
			if l == "</"+open+">" {
				open = ""
			}
			continue
		}
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "<") && strings.HasSuffix(l, ">") && !strings.HasPrefix(l, "</") {
			open, openLine = l[1:len(l)-1], i+1
		} else if strings.HasPrefix(l, "</") {
			return "", fmt.Errorf("line %d: closing tag %s without an opening tag", i+1, l)
		}
		options++
	}
	if open != "" {
		return "", fmt.Errorf("line %d: inline block <%s> is not terminated", openLine, open)
	}
	if options == 0 {
		return "", fmt.Errorf("profile contains no options")
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return text, nil
}
