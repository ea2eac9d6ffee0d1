package profile

import (
	"slices"
	"strings"
)

// Render returns canonical profile text: Access Server metadata first,
// then every option in the original order, one per line, with inline
// blocks and <connection> blocks written out. Comments and blank lines
// are dropped. Parse(p.Render()) yields the same profile (line numbers
// aside).
func (p *Profile) Render() string {
	var b strings.Builder
	keys := make([]string, 0, len(p.ASMeta))
	for k := range p.ASMeta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := p.ASMeta[k]
		if strings.Contains(v, "\n") {
			b.WriteString("# " + asPrefix + k + "_START\n")
			for l := range strings.SplitSeq(v, "\n") {
				b.WriteString("# " + l + "\n")
			}
			b.WriteString("# " + asPrefix + k + "_STOP\n")
			continue
		}
		b.WriteString("# " + asPrefix + k + "=" + v + "\n")
	}
	b.WriteString(renderOptions(p.Options, p.Connections))
	return b.String()
}

// renderOptions writes options; the k-th "connection" block is taken from
// conns[k] when given, else from its stored canonical text.
func renderOptions(opts []Option, conns []Connection) string {
	var b strings.Builder
	k := 0
	for _, o := range opts {
		switch {
		case o.Name == "connection" && o.Inline:
			b.WriteString("<connection>\n")
			if k < len(conns) {
				b.WriteString(renderOptions(conns[k].Options, nil))
			} else if len(o.Args) == 1 {
				b.WriteString(o.Args[0])
			}
			k++
			b.WriteString("</connection>\n")
		case o.Inline:
			b.WriteString("<" + o.Name + ">\n")
			if len(o.Args) == 1 {
				b.WriteString(o.Args[0])
				if o.Args[0] != "" && !strings.HasSuffix(o.Args[0], "\n") {
					b.WriteByte('\n')
				}
			}
			b.WriteString("</" + o.Name + ">\n")
		default:
			name := quote(o.Name)
			if strings.HasPrefix(name, "<") {
				name = `"` + name + `"`
			}
			if strings.HasPrefix(name, "--") {
				// Parse strips one leading "--"; keep the rest.
				name = "--" + name
			}
			b.WriteString(name)
			for _, a := range o.Args {
				b.WriteByte(' ')
				b.WriteString(quote(a))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}
