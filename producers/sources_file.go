package producers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/trainfeed/trainfeed/internal/wire"
)

// Entry is one source line of a sources file: the source, or why the line is
// not one.
type Entry struct {
	Line   int
	Text   string
	Source Source
	Err    error
}

// ReadSources reads a sources file: one source per line, either a URL, a
// local path, or a JSON object (HTTPSource) with url and optionally id,
// dataset, format, records and headers. Blank lines and lines starting with
// '#' are skipped. A line that is not a source is returned with its error,
// so one bad line costs nothing else. The returned error is for reading r
// only.
func ReadSources(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e := Entry{Line: n, Text: text}
		e.Source, e.Err = parseLine(text)
		if e.Err != nil {
			e.Err = fmt.Errorf("line %d: %w", n, e.Err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read sources line %d: %w", n+1, err)
	}
	return out, nil
}

func parseLine(text string) (Source, error) {
	if strings.HasPrefix(text, "{") {
		var js HTTPSource
		dec := json.NewDecoder(bytes.NewReader([]byte(text)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&js); err != nil {
			return Source{}, fmt.Errorf("not a source object: %w", err)
		}
		if dec.More() {
			return Source{}, errors.New("not a source object: text after the object")
		}
		if js.URL == "" {
			return Source{}, errors.New("source object has no url")
		}
		if err := checkURL(js.URL); err != nil {
			return Source{}, err
		}
		if err := wire.CheckFormat(js.Format, js.Records); err != nil {
			return Source{}, err
		}
		return js.source(), nil
	}
	if err := checkURL(text); err != nil {
		return Source{}, err
	}
	return Source{URL: text}, nil
}

// checkURL refuses text the fetch stage cannot fetch, as it reads it:
// spaces, control characters, a URL that does not parse, a scheme other
// than http, https and file, an http(s) URL without a host. A path (no
// scheme) is checked by the fetch stage, against its root.
func checkURL(s string) error {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("not a URL or path: %q contains spaces or control characters", s)
	}
	if !strings.Contains(s, "://") && (filepath.IsAbs(s) || strings.HasPrefix(s, ".")) {
		return nil // a path
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL or path: %w", err)
	}
	switch u.Scheme {
	case "", "file":
		return nil
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("not a URL or path: %q has no host", s)
		}
		return nil
	default:
		return fmt.Errorf("not a URL or path: unsupported scheme %q (want http, https or file)", u.Scheme)
	}
}
