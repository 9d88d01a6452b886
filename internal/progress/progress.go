// Package progress shows how a `trainfeed run` is going: a live progress bar
// redrawn in place when the output is a terminal, and plain periodic lines
// (for logs and CI) when it is not. Both show sources done of all, sources
// through fetch and transform, records, the record rate and an ETA.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/trainfeed/trainfeed/internal/runner"
	"github.com/trainfeed/trainfeed/internal/topology"
)

// How often each form updates.
const (
	BarEvery  = 250 * time.Millisecond
	LineEvery = 5 * time.Second
)

// window is how far back the rates and the ETA look.
const window = 10 * time.Second

// Reporter draws progress to one writer. Update, Observe and Finish are safe
// for concurrent use.
type Reporter struct {
	w     io.Writer
	tty   bool
	width func() int
	now   func() time.Time

	fetched, transformed atomic.Int64

	mu      sync.Mutex
	start   time.Time
	samples []sample
	drawn   int // length of the bar line on screen
}

type sample struct {
	at      time.Time
	done    int
	records int64
}

// New returns a Reporter writing to w: a bar when w is a terminal, lines
// otherwise.
func New(w io.Writer) *Reporter {
	r := &Reporter{w: w, now: time.Now, width: func() int { return 80 }}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = true
		r.width = func() int {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
				return w
			}
			return 80
		}
	}
	r.start = r.now()
	return r
}

// NewLines returns a Reporter that writes plain lines to w whatever w is.
func NewLines(w io.Writer) *Reporter {
	r := New(w)
	r.tty = false
	return r
}

// Terminal reports whether r draws a bar.
func (r *Reporter) Terminal() bool { return r.tty }

// Every is how often Update should be called.
func (r *Reporter) Every() time.Duration {
	if r.tty {
		return BarEvery
	}
	return LineEvery
}

// Observe counts sources through the fetch and transform stages; it has the
// signature of pipeline.Config.Observe.
func (r *Reporter) Observe(stage string, _ *runner.Msg, outcome runner.Outcome, _ time.Duration) {
	if outcome != runner.OutcomeAcked {
		return
	}
	switch stage {
	case topology.ConsumerFetch:
		r.fetched.Add(1)
	case topology.ConsumerTransform:
		r.transformed.Add(1)
	}
}

// Update shows the state: done of total sources are in the dataset or
// dead-lettered, and they hold records records. It has the signature of
// pipeline.Job.Progress.
func (r *Reporter) Update(done, total int, records int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.samples = append(r.samples, sample{at: now, done: done, records: records})
	for len(r.samples) > 2 && now.Sub(r.samples[1].at) >= window {
		r.samples = r.samples[1:]
	}
	line := r.format(now, done, total, records)
	if !r.tty {
		fmt.Fprintln(r.w, line)
		return
	}
	pad := ""
	if n := len([]rune(line)); n < r.drawn {
		pad = strings.Repeat(" ", r.drawn-n)
	}
	fmt.Fprint(r.w, "\r"+line+pad)
	r.drawn = len([]rune(line))
}

// Finish ends the bar's line so what follows starts on a clean one. Lines
// need no finishing.
func (r *Reporter) Finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tty && r.drawn > 0 {
		fmt.Fprint(r.w, "\r"+strings.Repeat(" ", r.drawn)+"\r")
		r.drawn = 0
	}
}

func (r *Reporter) format(now time.Time, done, total int, records int64) string {
	first := r.samples[0]
	span := now.Sub(first.at)
	if len(r.samples) == 1 {
		first, span = sample{at: r.start}, now.Sub(r.start)
	}
	var recRate, srcRate float64
	if span > 0 {
		recRate = float64(records-first.records) / span.Seconds()
		srcRate = float64(done-first.done) / span.Seconds()
	}
	eta := "ETA -"
	switch {
	case total > 0 && done >= total:
		eta = "done"
	case srcRate > 0:
		eta = "ETA " + roundETA(time.Duration(float64(total-done)/srcRate*float64(time.Second))).String()
	}
	stats := fmt.Sprintf("%d/%d sources · fetched %d · transformed %d · %s records · %s rec/s · %s",
		done, total, r.fetched.Load(), r.transformed.Load(), human(float64(records)), human(recRate), eta)
	if !r.tty {
		return fmt.Sprintf("progress: %d/%d sources done, fetched %d, transformed %d, %d records, %.0f records/s, %s, %s elapsed",
			done, total, r.fetched.Load(), r.transformed.Load(), records, recRate, eta, now.Sub(r.start).Round(time.Second))
	}
	barWidth := min(40, r.width()-len([]rune(stats))-4)
	if barWidth < 10 {
		return stats
	}
	filled := 0
	if total > 0 {
		filled = min(barWidth, done*barWidth/total)
	}
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	return "[" + bar + "] " + stats
}

func roundETA(d time.Duration) time.Duration {
	switch {
	case d > time.Hour:
		return d.Round(time.Minute)
	case d > time.Minute:
		return d.Round(time.Second)
	default:
		return d.Round(100 * time.Millisecond)
	}
}

// human writes n with a k/M/G suffix.
func human(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", n/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", n/1e3)
	default:
		return fmt.Sprintf("%.0f", n)
	}
}
