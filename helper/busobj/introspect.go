package busobj

import (
	"strings"
	"unicode/utf8"
)

const introspectHeader = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
                      "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- ovpn3go -->
<node>
`

// The standard interfaces, listed on every path like GDBus does.
const standardInterfaces = `  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg type="s" name="interface_name" direction="in"/>
      <arg type="s" name="property_name" direction="in"/>
      <arg type="v" name="value" direction="out"/>
    </method>
    <method name="GetAll">
      <arg type="s" name="interface_name" direction="in"/>
      <arg type="a{sv}" name="properties" direction="out"/>
    </method>
    <method name="Set">
      <arg type="s" name="interface_name" direction="in"/>
      <arg type="s" name="property_name" direction="in"/>
      <arg type="v" name="value" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg type="s" name="interface_name"/>
      <arg type="a{sv}" name="changed_properties"/>
      <arg type="as" name="invalidated_properties"/>
    </signal>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg type="s" name="xml_data" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg type="s" name="machine_uuid" direction="out"/>
    </method>
  </interface>
`

// esc escapes s for an XML attribute value, as encoding/xml's EscapeText
// does (quotes as &#34; and &#39;; what XML cannot carry, invalid UTF-8
// included, becomes U+FFFD). Written out here: importing encoding/xml
// for it left its 18 KB entity table, built by its package
// initialisation, on the heap of the daemon and of every backend.
func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			if r < 0x20 || r > 0xD7FF && r < 0xE000 || r == 0xFFFE || r == 0xFFFF {
				r = utf8.RuneError
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeArgs(b *strings.Builder, args []Arg, dir string) {
	for _, a := range args {
		b.WriteString(`      <arg type="` + esc(a.Type) + `"`)
		if a.Name != "" {
			b.WriteString(` name="` + esc(a.Name) + `"`)
		}
		if dir != "" {
			b.WriteString(` direction="` + dir + `"`)
		}
		b.WriteString("/>\n")
	}
}

// introspectXML renders an object (nil for an intermediate path) and its
// children. Children are self-closing `<node name="x"/>` elements: the C++
// netcfg proxy matches that exact text.
func introspectXML(obj *Interface, children []string) string {
	var b strings.Builder
	b.WriteString(introspectHeader)
	b.WriteString(standardInterfaces)
	if obj != nil {
		b.WriteString(`  <interface name="` + esc(obj.Name) + "\">\n")
		for _, m := range obj.Methods {
			if len(m.In)+len(m.Out) == 0 {
				b.WriteString(`    <method name="` + esc(m.Name) + "\"/>\n")
				continue
			}
			b.WriteString(`    <method name="` + esc(m.Name) + "\">\n")
			writeArgs(&b, m.In, "in")
			writeArgs(&b, m.Out, "out")
			b.WriteString("    </method>\n")
		}
		for _, sg := range obj.Signals {
			if len(sg.Args) == 0 {
				b.WriteString(`    <signal name="` + esc(sg.Name) + "\"/>\n")
				continue
			}
			b.WriteString(`    <signal name="` + esc(sg.Name) + "\">\n")
			writeArgs(&b, sg.Args, "")
			b.WriteString("    </signal>\n")
		}
		for _, p := range obj.Properties {
			access := "read"
			if p.Set != nil {
				access = "readwrite"
			}
			b.WriteString(`    <property type="` + esc(p.Type) + `" name="` + esc(p.Name) + `" access="` + access + "\"/>\n")
		}
		b.WriteString("  </interface>\n")
	}
	for _, c := range children {
		b.WriteString(`  <node name="` + esc(c) + "\"/>\n")
	}
	b.WriteString("</node>\n")
	return b.String()
}
