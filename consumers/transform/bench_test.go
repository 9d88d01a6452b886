package transform_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"strconv"
	"sync"
	"testing"

	"github.com/trainfeed/trainfeed/consumers/transform/parse"
	"github.com/trainfeed/trainfeed/consumers/transform/spec"
)

// The benchmarks of the transform stage's work: parsing each format, and
// parsing plus a spec's steps, as the handler runs them on every body
// (docs/performance.md, docs/transforms.md).

const benchRows = 100_000

var benchCSV = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	buf.WriteString("id,value,flag,name,text\n")
	for i := range benchRows {
		buf.WriteString(strconv.Itoa(i))
		buf.WriteByte(',')
		buf.WriteString(strconv.FormatFloat(float64(i)*1.25-1000.5, 'f', -1, 64))
		buf.WriteByte(',')
		buf.WriteString(strconv.FormatBool(i%3 == 0))
		buf.WriteString(",user_")
		buf.WriteString(strconv.Itoa(i % 977))
		if i%10 == 0 {
			buf.WriteString(",\"a quoted text, with a comma and \"\"quotes\"\"\"\n")
		} else {
			buf.WriteString(",some free text for row ")
			buf.WriteString(strconv.Itoa(i))
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
})

var benchJSONL = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	for i := range benchRows {
		buf.WriteString(`{"id":`)
		buf.WriteString(strconv.Itoa(i))
		buf.WriteString(`,"value":`)
		buf.WriteString(strconv.FormatFloat(float64(i)*1.25-1000.5, 'f', -1, 64))
		buf.WriteString(`,"flag":`)
		buf.WriteString(strconv.FormatBool(i%3 == 0))
		buf.WriteString(`,"name":"user_`)
		buf.WriteString(strconv.Itoa(i % 977))
		buf.WriteString(`","text":"some free text for row `)
		buf.WriteString(strconv.Itoa(i))
		buf.WriteString("\"}\n")
	}
	return buf.Bytes()
})

// benchJSONArray is the same rows as a JSON array, benchJSONAt as the array
// under data.items of an API response, between members to skip.
var (
	benchJSONArray = sync.OnceValue(func() []byte {
		rows := bytes.Split(bytes.TrimSuffix(benchJSONL(), []byte("\n")), []byte("\n"))
		return append(append([]byte("[\n"), bytes.Join(rows, []byte(",\n"))...), "\n]\n"...)
	})
	benchJSONAt = sync.OnceValue(func() []byte {
		var buf bytes.Buffer
		buf.WriteString(`{"meta": {"page": 1, "links": [{"rel": "next", "href": "/p/2"}]}, "data": {"total": 100000, "items": `)
		buf.Write(benchJSONArray())
		buf.WriteString(`}, "next": "/p/2"}`)
		return buf.Bytes()
	})
)

func benchmarkParse(b *testing.B, data []byte, format string) {
	benchmarkParseWith(b, data, parse.ParseOptions{Format: format})
}

func benchmarkParseWith(b *testing.B, data []byte, opts parse.ParseOptions) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := parse.Parse(context.Background(), bytes.NewReader(data), opts,
			func(*parse.Batch) error { return nil })
		if err != nil || n != benchRows {
			b.Fatalf("parse: %d rows, %v", n, err)
		}
	}
}

// BenchmarkParseCSV parses 100k rows of 5 columns into typed batches.
func BenchmarkParseCSV(b *testing.B) { benchmarkParse(b, benchCSV(), "csv") }

// BenchmarkParseJSONL parses the same rows as JSON lines.
func BenchmarkParseJSONL(b *testing.B) { benchmarkParse(b, benchJSONL(), "jsonl") }

// BenchmarkParseJSONArray parses the same rows as a JSON array.
func BenchmarkParseJSONArray(b *testing.B) { benchmarkParse(b, benchJSONArray(), "json") }

// BenchmarkParseJSONRecordsPath parses the same rows at the records path
// data.items of an API response.
func BenchmarkParseJSONRecordsPath(b *testing.B) {
	benchmarkParseWith(b, benchJSONAt(), parse.ParseOptions{Records: "data.items"})
}

// BenchmarkEncodingCSVLoop is the floor BenchmarkParseCSV is measured
// against: encoding/csv reading the same input, with strconv parsing the
// typed columns and nothing kept.
func BenchmarkEncodingCSVLoop(b *testing.B) {
	data := benchCSV()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		cr := csv.NewReader(bytes.NewReader(data))
		cr.ReuseRecord = true
		if _, err := cr.Read(); err != nil {
			b.Fatal(err)
		}
		var rows, chars int
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err := strconv.ParseInt(rec[0], 10, 64); err != nil {
				b.Fatal(err)
			}
			if _, err := strconv.ParseFloat(rec[1], 64); err != nil {
				b.Fatal(err)
			}
			if _, err := strconv.ParseBool(rec[2]); err != nil {
				b.Fatal(err)
			}
			chars += len(rec[3]) + len(rec[4])
			rows++
		}
		if rows != benchRows || chars == 0 {
			b.Fatalf("read %d rows", rows)
		}
	}
}

// benchSpec is a typical ML preparation spec over the benchmark's columns.
const benchSpec = `
steps:
  - trim: [text]
  - lower: [name]
  - filter: {column: value, op: ">", value: -1000}
  - log1p: {column: value, as: value_log}
  - tokens: {column: text, as: words}
  - hash_bucket: {column: name, buckets: 1024}
  - one_hot: {column: flag, values: ["true", "false"]}
  - drop: [flag]
`

// BenchmarkParseTransformCSV parses the rows of BenchmarkParseCSV and runs
// benchSpec on every batch, as the transform stage does.
func BenchmarkParseTransformCSV(b *testing.B) { benchmarkParseTransform(b, benchSpec) }

// BenchmarkParseTransformCSVDedupe adds a dedupe on the id, unique in every
// row: a lookup in a set that grows to 100,000 keys, bound by memory
// latency rather than by work per row.
func BenchmarkParseTransformCSVDedupe(b *testing.B) {
	benchmarkParseTransform(b, benchSpec+"  - dedupe: [id]\n")
}

func benchmarkParseTransform(b *testing.B, specText string) {
	data := benchCSV()
	s, err := spec.ParseSpec([]byte(specText), "yaml")
	if err != nil {
		b.Fatal(err)
	}
	prog, err := spec.Compile(s, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := prog.NewRun(context.Background())
		var rows int
		n, err := parse.Parse(context.Background(), bytes.NewReader(data), parse.ParseOptions{Format: "csv"}, func(batch *parse.Batch) error {
			out, err := r.Apply(batch)
			if err != nil {
				return err
			}
			rows += out.Rows
			return nil
		})
		if err != nil || n != benchRows || rows != benchRows-1 {
			b.Fatalf("parse: %d rows, %d kept, %v", n, rows, err)
		}
	}
}
