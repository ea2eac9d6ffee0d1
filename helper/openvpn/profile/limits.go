package profile

import "strconv"

// limitOption parses the session limits the engine enforces: "inactive n
// [bytes]", "session-timeout n" and "replay-window n [t]".
func (ps *parser) limitOption(o Option) {
	p, a := ps.p, o.Args
	switch o.Name {
	case "inactive":
		if !ps.nargs(o, 1, 2) {
			return
		}
		if n, ok := ps.intArg(o, a[0], 0, 1<<24); ok {
			p.Inactive = n
		}
		if len(a) == 2 {
			n, err := strconv.ParseInt(a[1], 10, 64)
			if err != nil || n < 0 {
				ps.fail(o.Line, o.Name, "byte threshold %q is not a non-negative number", a[1])
				return
			}
			p.InactiveBytes = n
		}
	case "session-timeout":
		if !ps.nargs(o, 1, 1) {
			return
		}
		if n, ok := ps.intArg(o, a[0], 0, 1<<24); ok {
			p.SessionTimeout = n
		}
	case "replay-window":
		if !ps.nargs(o, 1, 2) {
			return
		}
		// OpenVPN's limits: MIN_SEQ_BACKTRACK..MAX_SEQ_BACKTRACK and
		// MIN_TIME_BACKTRACK..MAX_TIME_BACKTRACK.
		n, ok := ps.intArg(o, a[0], 0, 65536)
		if !ok {
			return
		}
		t := -1
		if len(a) == 2 {
			if t, ok = ps.intArg(o, a[1], 0, 600); !ok {
				return
			}
		}
		p.ReplayWindowSet, p.ReplayWindow, p.ReplayTime = true, n, t
	}
}
