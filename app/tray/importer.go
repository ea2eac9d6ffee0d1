package tray

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/widget"
)

// maxProfileSize bounds what import reads: profiles with inline
// certificates are a few tens of kilobytes.
const maxProfileSize = 1 << 20

// ProfileName is the profile name for a file: its base name without the
// .ovpn/.conf suffix (and a trailing .txt some mailers add).
func ProfileName(path string) string {
	name := filepath.Base(path)
	name = strings.TrimSuffix(name, ".txt")
	for _, ext := range []string{".ovpn", ".conf"} {
		name = strings.TrimSuffix(name, ext)
	}
	return name
}

// ImportFile reads path and imports it; the error is what the person
// reads: the file problem, or the helper's refusal verbatim.
func ImportFile(ctx context.Context, b Backend, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %s", path, lang.L("not a regular file"))
	}
	if st.Size() > maxProfileSize {
		return "", fmt.Errorf("%s: %s", path, lang.L("too large for a profile"))
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	name := ProfileName(path)
	if _, err := b.Import(ctx, name, string(text)); err != nil {
		return name, err
	}
	return name, nil
}

// ImportView is the import window's content: a button opening the file
// dialog, a drop hint, and the result of the last import.
type ImportView struct {
	Content fyne.CanvasObject
	Choose  *widget.Button
	Result  *widget.Label
}

// importPaths imports files one after the other and shows each result.
func (t *Tray) importPaths(v *ImportView, paths []string) {
	t.goBg(func() {
		var lines []string
		failed := false
		for _, p := range paths {
			name, err := ImportFile(t.context(), t.opt.Backend, p)
			if err != nil {
				failed = true
				t.log.Warn("import refused", "file", p, "reason", err.Error())
				lines = append(lines, lang.L("Import of {{.File}} refused: {{.Error}}", map[string]any{"File": filepath.Base(p), "Error": err.Error()}))
				continue
			}
			t.log.Info("profile imported", "file", p, "profile", name)
			lines = append(lines, lang.L("Imported {{.Profile}}", map[string]any{"Profile": name}))
		}
		onUI(func() {
			v.Result.SetText(strings.Join(lines, "\n"))
			if failed {
				v.Result.Importance = widget.DangerImportance
			} else {
				v.Result.Importance = widget.SuccessImportance
			}
			v.Result.Refresh()
		})
		t.reloadSoon()
	})
}

// NewImportView builds the import content for window w.
func (t *Tray) NewImportView(w fyne.Window) *ImportView {
	v := &ImportView{Result: widget.NewLabel("")}
	v.Result.Wrapping = fyne.TextWrapWord
	v.Choose = widget.NewButton(lang.L("Choose a profile file…"), func() {
		d := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
			if err != nil || r == nil {
				return
			}
			r.Close()
			t.importPaths(v, []string{r.URI().Path()})
		}, w)
		d.SetFilter(storage.NewExtensionFileFilter([]string{".ovpn", ".conf", ".txt"}))
		d.Resize(fyne.NewSize(640, 420))
		d.Show()
	})
	hint := widget.NewLabel(lang.L("…or drop .ovpn files on this window."))
	v.Content = container.NewVBox(v.Choose, hint, v.Result)
	w.SetOnDropped(func(_ fyne.Position, uris []fyne.URI) {
		var paths []string
		for _, u := range uris {
			paths = append(paths, u.Path())
		}
		t.importPaths(v, paths)
	})
	return v
}
