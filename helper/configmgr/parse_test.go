package configmgr

import (
	"strings"
	"testing"
)

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name, text string
		valid      bool
		wantErr    string // prefix
	}{
		{"unclosed inline", "client\ndev tun\nremote 198.18.0.1 1194\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n", false, "line 4"},
		{"stray close tag", "client\ndev tun\n</ca>\nremote 198.18.0.1 1194\n", false, "line 3"},
		{"file reference", "client\nca ca.pem\n", false, "line 2: option 'ca' refers to file"},
		{"incomplete", "client\nremote 192.0.2.1\n", false, ""},
		{"complete", "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n</ca>\n", true, ""},
	}
	for _, tt := range tests {
		pr, err := parseProfile(tt.text)
		if tt.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: err %v, want prefix %q on one line", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || pr.valid != tt.valid {
			t.Errorf("%s: valid %v err %v", tt.name, pr.valid, err)
		}
		if !tt.valid && len(pr.problems) == 0 {
			t.Errorf("%s: no problems listed", tt.name)
		}
	}
	if m, _ := checkRequired("client\nremote x\n"); strings.Join(m, ", ") != "--ca, --dev" {
		t.Errorf("checkRequired: %v", m)
	}
	if _, locked := checkRequired("setenv GENERIC_CONFIG 1\n"); !locked {
		t.Error("server-locked profile not detected")
	}
}

func TestAssessReportsEverything(t *testing.T) {
	const ca = "<ca>\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n</ca>\n"
	tests := []struct{ name, text, want string }{
		{"valid", "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n" + ca, ""},
		{"all required missing", "verb 3\n",
			"Configuration profile is missing required options: --ca, --client or --tls-client, --dev, --remote; " +
				"Configuration profile is invalid: profile: no way to authenticate: add <cert> and <key> (or <pkcs12>), or auth-user-pass"},
		{"two missing", "client\nremote 192.0.2.1\nauth-user-pass\n",
			"Configuration profile is missing required options: --ca, --dev"},
		{"server locked and missing", "client\nsetenv GENERIC_CONFIG 1\ndev tun\nauth-user-pass\n" + ca,
			"Server locked profiles are unsupported; Configuration profile is missing required options: --remote"},
		{"server locked", "client\nsetenv GENERIC_CONFIG 1\ndev tun\nremote 192.0.2.1\nauth-user-pass\n" + ca,
			"Server locked profiles are unsupported"},
	}
	for _, tt := range tests {
		if got := strings.Join(assess(tt.text), "; "); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestFetchJSONShapes(t *testing.T) {
	const text = "client\ndev tun\nremote 192.0.2.1 1194 udp\nroute 10.0.0.0 255.0.0.0\nroute 10.1.0.0 255.255.0.0\nauth-user-pass\n" +
		"<ca>\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n</ca>\n# OVPN_ACCESS_SERVER_USERNAME=joe\n"
	js, err := fetchJSON(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"remote":[["192.0.2.1","1194","udp"]]`, `"dev":["tun"]`, `"client":[]`,
		`"route":[["10.0.0.0","255.0.0.0"],["10.1.0.0","255.255.0.0"]]`, `"ca":["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"]`} {
		if !strings.Contains(js, want) {
			t.Errorf("FetchJSON lacks %s:\n%s", want, js)
		}
	}
	if strings.Contains(js, "OVPN_ACCESS_SERVER") || strings.Contains(js, "joe") {
		t.Errorf("FetchJSON carries Access Server metadata: %s", js)
	}
}
