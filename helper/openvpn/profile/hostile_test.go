package profile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// hostile are inputs near the size limit built to find super-linear
// paths in the parser (a D-Bus caller can send any of them).
var hostile = map[string]string{
	"unterminated AS blocks": strings.Repeat("# OVPN_ACCESS_SERVER_A_START\n", MaxProfileSize/30),
	"unclosed tags":          strings.Repeat("<ca>\n", MaxProfileSize/5),
	"connections":            strings.Repeat("<connection>\n", MaxProfileSize/13),
	"closed tags":            strings.Repeat("<ca>\n</ca>\n", MaxProfileSize/11),
	"options":                strings.Repeat("remote a\n", MaxProfileSize/9),
	"bad quotes":             strings.Repeat("x \"a\n", MaxProfileSize/5),
	"comments":               strings.Repeat("#\n", MaxProfileSize/2),
}

// BenchmarkParseHostile: each case should cost about as much as parsing
// any other megabyte (milliseconds), not seconds.
func BenchmarkParseHostile(b *testing.B) {
	for name, text := range hostile {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				_, _ = Parse(text)
			}
		})
	}
}

func TestHostileErrorsStayShort(t *testing.T) {
	for name, text := range hostile {
		_, err := Parse(text)
		var pe *ParseError
		if err != nil && (!errors.As(err, &pe) || len(pe.Problems) > MaxProblems+1 || len(err.Error()) > 64<<10) {
			t.Errorf("%s: %d problems, %d bytes of error", name, len(pe.Problems), len(err.Error()))
		}
	}
	_, err := Parse(strings.Repeat("x \"a\n", 300))
	if !strings.HasSuffix(err.Error(), "\nprofile: and 200 more problems") {
		t.Errorf("no count of the rest: …%s", err.Error()[len(err.Error())-80:])
	}
}

// TestASMetaBlocks: _START/_STOP pairing with unterminated, interleaved
// and repeated blocks.
func TestASMetaBlocks(t *testing.T) {
	text := "# OVPN_ACCESS_SERVER_A_START\n" + // unterminated: a blank line ends the run
		"# a1\n" +
		"\n" +
		"# OVPN_ACCESS_SERVER_B_START\n" +
		"# OVPN_ACCESS_SERVER_C_START\n" + // C is inside B
		"#  b1\n" +
		"# OVPN_ACCESS_SERVER_B_STOP\n" +
		"# OVPN_ACCESS_SERVER_C_STOP\n" + // C's STOP after B consumed C's START: a plain key
		"# OVPN_ACCESS_SERVER_D_START\n" +
		"# OVPN_ACCESS_SERVER_D_STOP\n" +
		";OVPN_ACCESS_SERVER_E_START\n" +
		"# e1\n" +
		"# OVPN_ACCESS_SERVER_E_STOP\n" +
		"# OVPN_ACCESS_SERVER_F_START\n" + // the first STOP after it wins
		"# f1\n" +
		"# OVPN_ACCESS_SERVER_F_STOP\n" +
		"# OVPN_ACCESS_SERVER_F_STOP\n" +
		minimal
	p := mustParse(t, text)
	want := map[string]string{
		"A_START": "",
		"B":       "OVPN_ACCESS_SERVER_C_START\n b1",
		"C_STOP":  "",
		"D":       "",
		"E":       "e1",
		"F":       "f1",
		"F_STOP":  "",
	}
	if !reflect.DeepEqual(p.ASMeta, want) {
		t.Errorf("ASMeta\n got %q\nwant %q", p.ASMeta, want)
	}
}
