package tray

import (
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// LogLine is one forwarded log event.
type LogLine struct {
	Time     time.Time
	Category api.LogCategory
	Message  string
}

// String is the line as shown and copied: time, level, message.
func (l LogLine) String() string {
	return l.Time.Local().Format("15:04:05") + "  " + levelName(l.Category) + "  " + l.Message
}

func levelName(c api.LogCategory) string {
	switch {
	case c >= api.LogCategoryError:
		return lang.L("ERROR")
	case c == api.LogCategoryWarn:
		return lang.L("WARNING")
	case c == api.LogCategoryInfo || c == api.LogCategoryUndefined:
		return lang.L("INFO")
	}
	return lang.L("DEBUG")
}

// logFilters are the level filter's choices and the lowest category each
// shows.
func logFilters() []struct {
	label string
	min   api.LogCategory
} {
	return []struct {
		label string
		min   api.LogCategory
	}{
		{lang.L("Everything"), api.LogCategoryUndefined},
		{lang.L("Information and above"), api.LogCategoryInfo},
		{lang.L("Warnings and errors"), api.LogCategoryWarn},
		{lang.L("Errors only"), api.LogCategoryError},
	}
}

// maxLogLines bounds a viewer's memory; older lines are dropped.
const maxLogLines = 5000

// LogView is a live log viewer: lines arrive by Add, a level filter picks
// what is shown, Copy puts the shown lines on the clipboard.
type LogView struct {
	Content fyne.CanvasObject
	Filter  *widget.Select
	CopyBtn *widget.Button
	List    *widget.List

	mu      sync.Mutex
	lines   []LogLine
	shown   []LogLine
	min     api.LogCategory
	copyTo  func(string)
	follows bool
}

// NewLogView builds the viewer; copyTo receives the text Copy copies
// (the window's clipboard).
func NewLogView(copyTo func(string)) *LogView {
	v := &LogView{copyTo: copyTo, min: api.LogCategoryInfo, follows: true}
	v.List = widget.NewList(
		func() int { v.mu.Lock(); defer v.mu.Unlock(); return len(v.shown) },
		func() fyne.CanvasObject { l := widget.NewLabel(""); l.Truncation = fyne.TextTruncateEllipsis; return l },
		func(i widget.ListItemID, o fyne.CanvasObject) {
			v.mu.Lock()
			defer v.mu.Unlock()
			if i < len(v.shown) {
				o.(*widget.Label).SetText(v.shown[i].String())
			}
		})
	filters := logFilters()
	var labels []string
	for _, f := range filters {
		labels = append(labels, f.label)
	}
	v.Filter = widget.NewSelect(labels, func(s string) {
		for _, f := range filters {
			if f.label == s {
				v.SetMinLevel(f.min)
			}
		}
	})
	v.Filter.SetSelected(filters[1].label)
	v.CopyBtn = widget.NewButton(lang.L("Copy"), func() { v.copyTo(v.Text()) })
	top := container.NewBorder(nil, nil, widget.NewLabel(lang.L("Show")), v.CopyBtn, v.Filter)
	v.Content = container.NewBorder(top, nil, nil, nil, v.List)
	return v
}

// SetMinLevel shows only lines of category min or above.
func (v *LogView) SetMinLevel(min api.LogCategory) {
	v.mu.Lock()
	v.min = min
	v.shown = v.shown[:0]
	for _, l := range v.lines {
		if v.visible(l) {
			v.shown = append(v.shown, l)
		}
	}
	v.mu.Unlock()
	v.List.Refresh()
}

// visible: UNDEFINED counts as information (the services use it for plain
// messages).
func (v *LogView) visible(l LogLine) bool {
	c := l.Category
	if c == api.LogCategoryUndefined {
		c = api.LogCategoryInfo
	}
	return c >= v.min
}

// Add appends a line and scrolls to it.
func (v *LogView) Add(l LogLine) {
	v.mu.Lock()
	v.lines = append(v.lines, l)
	if len(v.lines) > maxLogLines {
		v.lines = v.lines[len(v.lines)-maxLogLines:]
	}
	vis := v.visible(l)
	if vis {
		v.shown = append(v.shown, l)
		if len(v.shown) > maxLogLines {
			v.shown = v.shown[len(v.shown)-maxLogLines:]
		}
	}
	v.mu.Unlock()
	if vis {
		v.List.Refresh()
		v.List.ScrollToBottom()
	}
}

// Text is the shown lines, one per line, as Copy copies them.
func (v *LogView) Text() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, l := range v.shown {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}
