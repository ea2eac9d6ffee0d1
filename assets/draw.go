package assets

import (
	"image"
	"image/color"
	"math"
)

// palette per state: the disc colour; glyphs are white.
var stateColour = map[string]color.NRGBA{
	"disconnected": {0x75, 0x75, 0x75, 0xff},
	"connecting":   {0xd9, 0x9a, 0x06, 0xff},
	"connected":    {0x12, 0x7f, 0x86, 0xff}, // the application icon's teal
	"paused":       {0x2f, 0x5f, 0xb3, 0xff},
	"attention":    {0xe0, 0x6c, 0x00, 0xff},
	"error":        {0xc0, 0x1c, 0x28, 0xff},
}

// StateIcon draws the tray icon of state (one of States) at size×size
// pixels: a coloured disc with a white glyph — a closed padlock when
// connected, an open one when disconnected, a padlock with three dots while
// connecting, pause bars, an exclamation mark, a cross. 4×4 supersampling
// gives smooth edges. It returns nil for an unknown state.
func StateIcon(state string, size int) *image.NRGBA {
	disc, ok := stateColour[state]
	if !ok {
		return nil
	}
	glyph := glyphs[state]
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var inDisc, inGlyph int
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) / float64(size)
					y := (float64(py) + (float64(sy)+0.5)/ss) / float64(size)
					if math.Hypot(x-0.5, y-0.5) <= 0.47 {
						inDisc++
						if glyph(x, y) {
							inGlyph++
						}
					}
				}
			}
			if inDisc == 0 {
				continue
			}
			// blend white glyph over the disc, alpha = disc coverage
			g := float64(inGlyph) / float64(inDisc)
			mix := func(c uint8) uint8 { return uint8(math.Round(float64(c)*(1-g) + 255*g)) }
			img.SetNRGBA(px, py, color.NRGBA{mix(disc.R), mix(disc.G), mix(disc.B), uint8(math.Round(255 * float64(inDisc) / ss / ss))})
		}
	}
	return img
}

type shape func(x, y float64) bool

func rect(x0, y0, x1, y1 float64) shape {
	return func(x, y float64) bool { return x >= x0 && x <= x1 && y >= y0 && y <= y1 }
}

func circle(cx, cy, r float64) shape {
	return func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= r }
}

// arc is the upper half ring of a padlock shackle centred at (cx, cy),
// continued downwards by its two legs to legEnd.
func shackle(cx, cy, r, w, legEnd float64) shape {
	return func(x, y float64) bool {
		d := math.Hypot(x-cx, y-cy)
		if y <= cy {
			return d <= r && d >= r-w
		}
		return y <= legEnd && (math.Abs(x-(cx-r+w/2)) <= w/2 || math.Abs(x-(cx+r-w/2)) <= w/2)
	}
}

func union(s ...shape) shape {
	return func(x, y float64) bool {
		for _, f := range s {
			if f(x, y) {
				return true
			}
		}
		return false
	}
}

func minus(a, b shape) shape { return func(x, y float64) bool { return a(x, y) && !b(x, y) } }

var (
	lockBody = rect(0.29, 0.46, 0.71, 0.76)
	keyhole  = union(circle(0.5, 0.57, 0.045), rect(0.48, 0.57, 0.52, 0.68))
	closed   = union(shackle(0.5, 0.42, 0.15, 0.055, 0.47), minus(lockBody, keyhole))
	dots     = union(circle(0.39, 0.61, 0.035), circle(0.5, 0.61, 0.035), circle(0.61, 0.61, 0.035))
)

var glyphs = map[string]shape{
	"connected":    closed,
	"disconnected": union(shackle(0.5, 0.32, 0.15, 0.055, 0.40), rect(0.595, 0.40, 0.65, 0.47), minus(lockBody, keyhole)),
	"connecting":   union(shackle(0.5, 0.42, 0.15, 0.055, 0.47), minus(lockBody, dots)),
	"paused":       union(rect(0.36, 0.28, 0.45, 0.72), rect(0.55, 0.28, 0.64, 0.72)),
	"attention":    union(rect(0.455, 0.22, 0.545, 0.60), circle(0.5, 0.72, 0.055)),
	"error": func(x, y float64) bool {
		const w = 0.05
		if x < 0.28 || x > 0.72 || y < 0.28 || y > 0.72 {
			return false
		}
		return math.Abs((x-0.5)-(y-0.5)) <= w*math.Sqrt2 || math.Abs((x-0.5)+(y-0.5)) <= w*math.Sqrt2
	},
}
