package parse

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseCSV reads delimited records from in: a header row, then one record
// per row with as many fields as the header.
func parseCSV(in *input, b *builder, comma byte) error {
	cr := newCSVReader(in.buf, comma)
	header, err := cr.read()
	if err == io.EOF {
		return b.flush(true)
	}
	if err != nil {
		return in.fail(csvErrLine(err, 1), csvErr(err))
	}
	in.lim.reset()
	names := columnNames(header)
	b.cols = make([]*column, len(names))
	for i, name := range names {
		b.cols[i] = newColumn(name, b.capHint)
	}

	prev := 1 // line of the previous record
	for {
		rec, err := cr.read()
		if err == io.EOF {
			return b.flush(true)
		}
		if err != nil {
			line := csvErrLine(err, int64(prev+1))
			var cpe *csvError
			if !errors.As(err, &cpe) || in.failed() {
				return in.fail(line, csvErr(err))
			}
			// Reading resumes on the line after a malformed record.
			in.lim.reset()
			prev = int(line)
			if err := b.skip(line, csvErr(err)); err != nil {
				return err
			}
			continue
		}
		in.lim.reset()
		line := cr.start
		prev = line
		if len(rec) != len(b.cols) {
			err := fmt.Errorf("%w: got %d, want %d", csv.ErrFieldCount, len(rec), len(b.cols))
			if err := b.skip(int64(line), err); err != nil {
				return err
			}
			continue
		}
		if b.full() {
			if err := b.flush(false); err != nil {
				return err
			}
		}
		b.startRow(int64(line))
		size := len(rec)
		ascii := !in.lim.nonASCII
		for i, f := range rec {
			b.cols[i].addText(f, ascii)
			size += len(f)
		}
		b.endRow(size)
	}
}

// csvErrLine returns the line a csv error names, or def.
func csvErrLine(err error, def int64) int64 {
	var pe *csvError
	if errors.As(err, &pe) && pe.Line > 0 {
		return int64(pe.Line)
	}
	return def
}

// csvErr drops the line from a csvError, which the ParseError made of it
// names again.
func csvErr(err error) error {
	var pe *csvError
	if errors.As(err, &pe) {
		return fmt.Errorf("field %d: %w", pe.Field, pe.Err)
	}
	return err
}

// columnNames turns a header row into unique, valid UTF-8 column names: an
// empty name becomes "col_<i>" and a repeated one "<name>_<i>", i being the
// 0-based position in the row.
func columnNames(header []string) []string {
	names := make([]string, len(header))
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		name := strings.ToValidUTF8(h, "\uFFFD")
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF")
		}
		if name == "" {
			name = "col_" + strconv.Itoa(i)
		}
		if seen[name] {
			base := name
			name = base + "_" + strconv.Itoa(i)
			for n := 2; seen[name]; n++ {
				name = base + "_" + strconv.Itoa(i) + "_" + strconv.Itoa(n)
			}
		}
		seen[name] = true
		names[i] = strings.Clone(name)
	}
	return names
}
