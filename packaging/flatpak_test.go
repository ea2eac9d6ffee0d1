package packaging

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite flatpak/go-modules.json from go.mod and the module cache")

// The sandbox the tray gets: the display, the OpenVPN 3 services on the
// system bus, the tray host, the Secret Service for remembered passwords.
// Notifications, opening URLs and choosing files go through portals
// (built with -tags flatpak), which need no permission.
var wantFinishArgs = []string{
	"--device=dri",
	"--share=ipc",
	"--socket=fallback-x11",
	"--system-talk-name=net.openvpn.v3.*",
	"--talk-name=org.freedesktop.secrets",
	"--talk-name=org.kde.StatusNotifierWatcher",
}

type flatpakManifest struct {
	AppID          string   `json:"app-id"`
	Runtime        string   `json:"runtime"`
	RuntimeVersion string   `json:"runtime-version"`
	SDK            string   `json:"sdk"`
	SDKExtensions  []string `json:"sdk-extensions"`
	Command        string   `json:"command"`
	FinishArgs     []string `json:"finish-args"`
	BuildOptions   struct {
		AppendPath string            `json:"append-path"`
		Env        map[string]string `json:"env"`
	} `json:"build-options"`
	Modules []struct {
		Name          string            `json:"name"`
		Buildsystem   string            `json:"buildsystem"`
		BuildCommands []string          `json:"build-commands"`
		Sources       []json.RawMessage `json:"sources"`
	} `json:"modules"`
}

type flatpakSource struct {
	Type   string `json:"type"`
	Path   string `json:"path,omitempty"`
	URL    string `json:"url,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Dest   string `json:"dest,omitempty"`
}

func strictJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestFlatpakManifest(t *testing.T) {
	var m flatpakManifest
	strictJSON(t, "flatpak/net.ovpn3go.tray.json", &m)
	if m.AppID != fyneAppID(t) || m.Command != "ovpn3-tray" {
		t.Errorf("app-id %q command %q", m.AppID, m.Command)
	}
	if m.Runtime != "org.freedesktop.Platform" || m.SDK != "org.freedesktop.Sdk" || m.RuntimeVersion == "" ||
		!slices.Equal(m.SDKExtensions, []string{"org.freedesktop.Sdk.Extension.golang"}) {
		t.Errorf("runtime %s//%s sdk %s extensions %v", m.Runtime, m.RuntimeVersion, m.SDK, m.SDKExtensions)
	}
	if m.BuildOptions.AppendPath != "/usr/lib/sdk/golang/bin" || m.BuildOptions.Env["GOTOOLCHAIN"] != "local" {
		t.Errorf("build-options %+v: want the golang extension's go and no toolchain download", m.BuildOptions)
	}
	got := slices.Sorted(slices.Values(m.FinishArgs))
	if !slices.Equal(got, wantFinishArgs) {
		t.Errorf("finish-args %v, want exactly %v", got, wantFinishArgs)
	}
	if len(m.Modules) != 1 {
		t.Fatalf("%d modules, want the tray only", len(m.Modules))
	}
	mod := m.Modules[0]
	if !strings.Contains(strings.Join(mod.BuildCommands, "\n"), "-tags flatpak") {
		t.Error("the tray is not built with -tags flatpak (portal notifications and OpenURI)")
	}
	var listed bool
	for _, raw := range mod.Sources {
		var name string
		if json.Unmarshal(raw, &name) == nil {
			listed = listed || name == "go-modules.json"
			continue
		}
		var s flatpakSource
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		if s.Type != "dir" || s.Path != "../.." {
			t.Errorf("source %+v: only the checkout itself may be unpinned", s)
		}
	}
	if !listed {
		t.Error("go-modules.json is not among the sources")
	}
	for _, c := range mod.BuildCommands {
		for _, f := range strings.Fields(c) {
			if strings.HasPrefix(f, "packaging/") || strings.HasPrefix(f, "assets/") {
				if _, err := os.Stat(filepath.Join("..", f)); err != nil {
					t.Errorf("build command installs a missing file: %v", err)
				}
			}
		}
	}
}

func fyneAppID(t *testing.T) string { return strings.Trim(fyneApp(t)["ID"], `"`) }

// TestFlatpakModules: the Go modules are sources pinned by sha256, laid
// out as a GOPROXY file tree (Flatpak builds are offline): every module the
// tray compiles has its .mod and .zip, nothing names a module version
// outside go.mod's build list, and every pin matches the file in the local
// module cache where the cache has it. `go test ./packaging -run
// TestFlatpakModules -update` regenerates the list after a go.mod change.
func TestFlatpakModules(t *testing.T) {
	cache, all, compiled := goModules(t)
	if *update {
		b, err := json.MarshalIndent(moduleSources(t, cache, all, compiled), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("flatpak/go-modules.json", append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []flatpakSource
	strictJSON(t, "flatpak/go-modules.json", &got)
	byDest := map[string]bool{}
	for _, s := range got {
		rel, ok := strings.CutPrefix(s.URL, "https://proxy.golang.org/")
		if s.Type != "file" || !ok || len(s.SHA256) != 64 || s.Dest != "gomod/"+filepath.Dir(rel) {
			t.Errorf("source %+v: want a proxy.golang.org file pinned by sha256 under gomod/", s)
			continue
		}
		byDest[rel] = true
		mod, file, _ := strings.Cut(rel, "/@v/")
		ver := file[:strings.LastIndex(file, ".")]
		if !all[mod+"@"+ver] {
			t.Errorf("%s: not in go.mod's build list (rerun with -update)", rel)
		}
		if b, err := os.ReadFile(filepath.Join(cache, "cache/download", rel)); err == nil {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != s.SHA256 {
				t.Errorf("%s: sha256 %s, the module cache's file has %x", rel, s.SHA256, sum)
			}
		}
	}
	for mv := range compiled {
		for _, ext := range []string{"mod", "zip"} {
			mod, ver, _ := strings.Cut(mv, "@")
			if rel := mod + "/@v/" + ver + "." + ext; !byDest[rel] {
				t.Errorf("the tray compiles %s but go-modules.json lacks %s (rerun with -update)", mv, rel)
			}
		}
	}
}

// goModules returns the module cache, the build list and the modules the
// tray compiles, as escaped "path@version".
func goModules(t *testing.T) (cache string, all, compiled map[string]bool) {
	t.Helper()
	goList := func(args ...string) []string {
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		return strings.Fields(string(out))
	}
	set := func(mvs []string) map[string]bool {
		m := map[string]bool{}
		for _, mv := range mvs {
			m[escapeModule(mv)] = true
		}
		return m
	}
	cache = strings.Join(goList("env", "GOMODCACHE"), "")
	all = set(goList("list", "-m", "-f", "{{if .Version}}{{.Path}}@{{.Version}}{{end}}", "all"))
	compiled = set(goList("list", "-deps", "-f", "{{with .Module}}{{if .Version}}{{.Path}}@{{.Version}}{{end}}{{end}}", "./app/cmd/ovpn3-tray"))
	return cache, all, compiled
}

// moduleSources hashes, from the module cache, .info/.mod of the build
// list (where present: the graph needs only some) and .zip of what the
// tray compiles.
func moduleSources(t *testing.T, cache string, all, compiled map[string]bool) []flatpakSource {
	t.Helper()
	var out []flatpakSource
	for _, mv := range slices.Sorted(maps.Keys(all)) {
		mod, ver, _ := strings.Cut(mv, "@")
		for _, ext := range []string{"info", "mod", "zip"} {
			rel := mod + "/@v/" + ver + "." + ext
			b, err := os.ReadFile(filepath.Join(cache, "cache/download", rel))
			if err != nil {
				if compiled[mv] && ext != "info" {
					t.Fatalf("module cache: %v (run `go mod download`)", err)
				}
				continue
			}
			if ext == "zip" && !compiled[mv] {
				continue
			}
			sum := sha256.Sum256(b)
			out = append(out, flatpakSource{Type: "file", URL: "https://proxy.golang.org/" + rel,
				SHA256: hex.EncodeToString(sum[:]), Dest: "gomod/" + mod + "/@v"})
		}
	}
	return out
}

// escapeModule is the module proxy's case encoding: an upper-case letter
// becomes "!" and its lower-case form.
func escapeModule(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
