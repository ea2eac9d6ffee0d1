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
		if !tt.valid && pr.problems == "" {
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
