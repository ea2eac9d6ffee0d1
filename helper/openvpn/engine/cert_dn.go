package engine

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
)

// OpenSSL short names for the attribute types that occur in certificate
// subjects; OpenVPN prints subjects with them (verify-x509-name subject).
var dnShortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.13":                   "description",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.17":                   "postalCode",
	"2.5.4.41":                   "name",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"2.5.4.97":                   "organizationIdentifier",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"1.3.6.1.4.1.311.60.2.1.1":   "jurisdictionL",
	"1.3.6.1.4.1.311.60.2.1.2":   "jurisdictionST",
	"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionC",
}

// openvpnSubject renders a certificate subject the way OpenVPN 2.4+ does
// with OpenSSL (X509_NAME_print_ex with XN_FLAG_SEP_CPLUS_SPC|XN_FLAG_FN_SN,
// UTF-8, control characters escaped): attributes in certificate order,
// ", " between RDNs, " + " inside a multi-valued RDN, e.g.
// "C=DE, O=Example, CN=vpn.example.com".
func openvpnSubject(c *x509.Certificate) string {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(c.RawSubject, &rdns); err != nil || len(rest) != 0 {
		return c.Subject.String()
	}
	var b strings.Builder
	for i, rdn := range rdns {
		if i > 0 {
			b.WriteString(", ")
		}
		for j, atv := range rdn {
			if j > 0 {
				b.WriteString(" + ")
			}
			name, ok := dnShortNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			b.WriteString(name)
			b.WriteByte('=')
			writeDNValue(&b, atv.Value)
		}
	}
	return b.String()
}

func writeDNValue(b *strings.Builder, v any) {
	s, ok := v.(string)
	if !ok {
		// Non-string values (rare) print as OpenSSL's hex dump would.
		der, err := asn1.Marshal(v)
		if err != nil {
			fmt.Fprintf(b, "%v", v)
			return
		}
		fmt.Fprintf(b, "#%X", der)
		return
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(b, "\\%02X", r)
			continue
		}
		b.WriteRune(r)
	}
}

// lastCommonName is the subject's last CN, the one OpenVPN uses as the
// peer's common name (verify-x509-name … name / name-prefix).
func lastCommonName(c *x509.Certificate) string {
	cn := ""
	for _, atv := range c.Subject.Names {
		if atv.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) {
			if s, ok := atv.Value.(string); ok {
				cn = s
			}
		}
	}
	return cn
}

// checkX509Name applies verify-x509-name to the server's leaf certificate.
func checkX509Name(c *x509.Certificate, want, typ string) error {
	if want == "" {
		return nil
	}
	switch typ {
	case "", "subject":
		if got := openvpnSubject(c); got != want {
			return fmt.Errorf("verify-x509-name: server certificate subject %q is not %q", got, want)
		}
	case "name":
		if got := lastCommonName(c); got != want {
			return fmt.Errorf("verify-x509-name: server certificate common name %q is not %q (subject %q)", got, want, openvpnSubject(c))
		}
	case "name-prefix":
		if got := lastCommonName(c); !strings.HasPrefix(got, want) {
			return fmt.Errorf("verify-x509-name: server certificate common name %q does not start with %q (subject %q)", got, want, openvpnSubject(c))
		}
	default:
		return fmt.Errorf("verify-x509-name: unknown type %q (want subject, name or name-prefix)", typ)
	}
	return nil
}
