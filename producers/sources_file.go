package producers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode"
)

// Entry is one source line of a sources file: the source, or why the line is
// not one.
type Entry struct {
	Line   int
	Text   string
	Source Source
	Err    error
}

// jsonSource is the JSON form of a line.
type jsonSource struct {
	ID      string            `json:"id"`
	Dataset string            `json:"dataset"`
	URL     string            `json:"url"`
	Format  string            `json:"format"`
	Headers map[string]string `json:"headers"`
}

// ReadSources reads a sources file: one source per line, either a URL, a
// local path, or a JSON object with url and optionally id, dataset, format and
// headers. Blank lines and lines starting with '#' are skipped. A line that
// is not a source is returned with its error, so one bad line costs nothing
// else. The returned error is for reading r only.
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
		var js jsonSource
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
		return Source{ID: js.ID, Dataset: js.Dataset, URL: js.URL, Format: js.Format, Headers: js.Headers}, nil
	}
	if err := checkURL(text); err != nil {
		return Source{}, err
	}
	return Source{URL: text}, nil
}

// checkURL refuses text that cannot be a URL or a path: spaces, control
// characters, or a URL that does not parse.
func checkURL(s string) error {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("not a URL or path: %q contains spaces or control characters", s)
	}
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("not a URL or path: %w", err)
	}
	return nil
}
