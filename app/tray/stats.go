package tray

import (
	"fmt"
	"image/color"
	"math"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// FormatBytes renders a byte count with binary units: "0 B", "1023 B",
// "1.5 KiB", "12.3 MiB".
func FormatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// FormatRate renders bytes per second as bits per second with SI units, as
// network rates are usually read: "0 bit/s", "800 bit/s", "1.2 Mbit/s".
func FormatRate(bytesPerSec float64) string {
	bits := bytesPerSec * 8
	if bits < 1000 {
		return fmt.Sprintf("%.0f bit/s", bits)
	}
	units := []string{"kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"}
	i := -1
	for bits >= 1000 && i < len(units)-1 {
		bits /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", bits, units[i])
}

// FormatDuration renders how long a tunnel has been up: "45 s", "3 min 05 s",
// "2 h 07 min", "3 d 4 h".
func FormatDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%d h %02d min", s/3600, s/60%60)
	}
	return fmt.Sprintf("%d d %d h", s/86400, s/3600%24)
}

// rateSample is the rate between two counter readings.
type rateSample struct{ in, out float64 }

// History keeps the counters' rates over the last minutes for the graph.
type History struct {
	Max     int // samples kept (one per refresh)
	samples []rateSample
	last    map[string]int64
	lastT   time.Time
}

// Add records counters read at t and returns the current rates (bytes/s in
// and out). A counter that went backwards (a restarted backend) restarts
// the rate at zero instead of producing a negative one.
func (h *History) Add(t time.Time, stats map[string]int64) (in, out float64) {
	if h.last != nil && t.After(h.lastT) {
		dt := t.Sub(h.lastT).Seconds()
		din := stats["BYTES_IN"] - h.last["BYTES_IN"]
		dout := stats["BYTES_OUT"] - h.last["BYTES_OUT"]
		if din > 0 {
			in = float64(din) / dt
		}
		if dout > 0 {
			out = float64(dout) / dt
		}
		h.samples = append(h.samples, rateSample{in, out})
		if max := h.max(); len(h.samples) > max {
			h.samples = h.samples[len(h.samples)-max:]
		}
	}
	h.last, h.lastT = stats, t
	return in, out
}

func (h *History) max() int {
	if h.Max > 0 {
		return h.Max
	}
	return 180
}

// Samples returns the recorded rates, oldest first.
func (h *History) Samples() (in, out []float64) {
	for _, s := range h.samples {
		in = append(in, s.in)
		out = append(out, s.out)
	}
	return in, out
}

// StatsView is the statistics window's content.
type StatsView struct {
	Content  fyne.CanvasObject
	Values   map[string]*widget.Label // by row key: bytes_in, bytes_out, packets_in, packets_out, rate_in, rate_out, since, server, cipher
	graph    *fyne.Container
	history  History
	inColor  color.Color
	outColor color.Color
}

// NewStatsView builds the statistics layout; Update fills it.
func NewStatsView() *StatsView {
	v := &StatsView{Values: map[string]*widget.Label{}, history: History{Max: 180},
		inColor: color.NRGBA{0x12, 0x7f, 0x86, 0xff}, outColor: color.NRGBA{0xd9, 0x9a, 0x06, 0xff}}
	rows := []struct{ key, label string }{
		{"server", lang.L("Server")},
		{"cipher", lang.L("Cipher")},
		{"since", lang.L("Connected since")},
		{"bytes_in", lang.L("Received")},
		{"bytes_out", lang.L("Sent")},
		{"packets_in", lang.L("Packets received")},
		{"packets_out", lang.L("Packets sent")},
		{"rate_in", lang.L("Download rate")},
		{"rate_out", lang.L("Upload rate")},
	}
	form := widget.NewForm()
	for _, r := range rows {
		l := widget.NewLabel("–")
		v.Values[r.key] = l
		form.Append(r.label, l)
	}
	v.graph = container.NewWithoutLayout()
	graphBox := container.NewStack(canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground)), v.graph)
	graphBox.Resize(fyne.NewSize(360, 90))
	sized := container.New(&fixedHeight{90}, graphBox)
	legend := container.NewHBox(legendItem(v.inColor, lang.L("Download")), legendItem(v.outColor, lang.L("Upload")))
	v.Content = container.NewVBox(form, widget.NewLabel(lang.L("Last three minutes")), sized, legend)
	return v
}

func legendItem(c color.Color, text string) fyne.CanvasObject {
	r := canvas.NewRectangle(c)
	r.SetMinSize(fyne.NewSize(12, 12))
	return container.NewHBox(container.NewCenter(r), widget.NewLabel(text))
}

// fixedHeight lays its objects out at the container's width and a fixed
// height.
type fixedHeight struct{ h float32 }

func (f *fixedHeight) MinSize([]fyne.CanvasObject) fyne.Size { return fyne.NewSize(240, f.h) }
func (f *fixedHeight) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	for _, o := range objs {
		o.Resize(fyne.NewSize(size.Width, f.h))
		o.Move(fyne.NewPos(0, 0))
	}
}

// Update shows d as read at now; cipher is what the log said ("" unknown).
func (v *StatsView) Update(now time.Time, d Details, cipher string) {
	in, out := v.history.Add(now, d.Stats)
	set := func(k, s string) { v.Values[k].SetText(s) }
	set("server", orDash(d.Server))
	set("cipher", orDash(cipher))
	if d.ConnectedAt.IsZero() {
		set("since", lang.L("Not connected"))
	} else {
		set("since", lang.L("{{.Time}} ({{.Duration}})", map[string]any{
			"Time": d.ConnectedAt.Local().Format("2006-01-02 15:04:05"), "Duration": FormatDuration(now.Sub(d.ConnectedAt))}))
	}
	set("bytes_in", FormatBytes(d.Stats["BYTES_IN"]))
	set("bytes_out", FormatBytes(d.Stats["BYTES_OUT"]))
	set("packets_in", fmt.Sprint(d.Stats["PACKETS_IN"]))
	set("packets_out", fmt.Sprint(d.Stats["PACKETS_OUT"]))
	set("rate_in", FormatRate(in))
	set("rate_out", FormatRate(out))
	v.drawGraph()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// drawGraph draws the two rate lines scaled to the largest sample.
func (v *StatsView) drawGraph() {
	in, out := v.history.Samples()
	v.graph.Objects = nil
	size := fyne.NewSize(360, 90)
	if s := v.graph.Size(); s.Width > 0 {
		size = s
	}
	peak := 1.0
	for i := range in {
		peak = math.Max(peak, math.Max(in[i], out[i]))
	}
	n := v.history.max()
	for _, series := range []struct {
		vals []float64
		c    color.Color
	}{{in, v.inColor}, {out, v.outColor}} {
		off := n - len(series.vals)
		for i := 1; i < len(series.vals); i++ {
			x0 := size.Width * float32(off+i-1) / float32(n-1)
			x1 := size.Width * float32(off+i) / float32(n-1)
			y0 := size.Height * float32(1-series.vals[i-1]/peak)
			y1 := size.Height * float32(1-series.vals[i]/peak)
			l := canvas.NewLine(series.c)
			l.StrokeWidth = 2
			l.Position1, l.Position2 = fyne.NewPos(x0, y0), fyne.NewPos(x1, y1)
			v.graph.Objects = append(v.graph.Objects, l)
		}
	}
	v.graph.Refresh()
}
