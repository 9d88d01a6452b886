package wire

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func TestRoundTrips(t *testing.T) {
	at := time.Unix(1795939200, 123) // msgpack decodes times in time.Local
	tests := []struct {
		name string
		in   any
		out  any
	}{
		{"source", &Source{ID: "a", Dataset: "ds", URL: "https://x/a.csv", Format: "csv", Headers: map[string]string{"Authorization": "x"}, PublishedAt: at}, &Source{}},
		{"fetched", &Fetched{SourceID: "a", Dataset: "ds", URL: "u", Object: "sha256/ab", SHA256: "ab", Size: 10, ContentType: "text/csv", FetchedAt: at}, &Fetched{}},
		{"batch", &RecordBatch{SourceID: "a", Dataset: "ds", Part: 2, Last: true, Rows: 3, At: at, Columns: []Column{
			{Name: "i", Type: TypeInt, Ints: []int64{math.MinInt64, 0, math.MaxInt64}},
			{Name: "f", Type: TypeFloat, Floats: []float64{-1.5, 0, math.Inf(1)}, Nulls: []bool{false, true, false}},
			{Name: "b", Type: TypeBool, Bools: []bool{true, false, true}},
			{Name: "s", Type: TypeString, Strings: []string{"", "é", "x\x00y"}},
		}}, &RecordBatch{}},
		{"empty batch", &RecordBatch{SourceID: "a", Dataset: "ds", Last: true, At: at}, &RecordBatch{}},
		{"strings across blocks", &RecordBatch{SourceID: "a", Dataset: "ds", Rows: 4, At: at, Columns: []Column{
			{Name: "s", Type: TypeString, Strings: []string{strings.Repeat("a", 40<<10), strings.Repeat("b", 40<<10), strings.Repeat("c", 200<<10), "d"}},
		}}, &RecordBatch{}},
		{"chunk", &Chunk{Dataset: "ds", Seq: 7, File: "f", Records: 10, Schema: []Field{{"i", TypeInt}}, CreatedAt: at,
			Parts: []PartRef{{SourceID: "a", Part: 0, Last: true, Rows: 10}}}, &Chunk{}},
		{"dead letter", &DeadLetter{Stage: "fetch", Dataset: "ds", Subject: "s", StreamSeq: 3, Data: []byte{1, 2},
			Headers: map[string][]string{"K": {"v"}}, Error: "404", Attempts: 1, At: at}, &DeadLetter{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Encode(tt.in)
			require.NoError(t, err)
			require.NoError(t, Decode(data, tt.out))
			require.Equal(t, tt.in, tt.out)
		})
	}
}

func TestDecodeRefusesNewerVersions(t *testing.T) {
	data, err := msgpack.Marshal(&Fetched{V: Version + 1})
	require.NoError(t, err)
	require.ErrorIs(t, Decode(data, &Fetched{}), ErrVersion)
	_, err = DecodeSource([]byte(`{"v": 99, "url": "x"}`), "")
	require.ErrorIs(t, err, ErrVersion)
}

func TestColumnSkipsUnknownKeys(t *testing.T) {
	data, err := msgpack.Marshal(map[string]any{"name": "x", "type": "int", "ints": []int64{1, 2}, "future": map[string]int{"a": 1}})
	require.NoError(t, err)
	var c Column
	require.NoError(t, msgpack.Unmarshal(data, &c))
	require.Equal(t, Column{Name: "x", Type: TypeInt, Ints: []int64{1, 2}}, c)
}

func TestDecodeSource(t *testing.T) {
	mp, err := Encode(&Source{ID: "m", URL: "https://x/m.csv"})
	require.NoError(t, err)
	tests := []struct {
		name, contentType string
		data              []byte
		want              Source
		err               string
	}{
		{name: "json", data: []byte(` {"url": "https://x/a.csv", "dataset": "web"}`), want: Source{URL: "https://x/a.csv", Dataset: "web"}},
		{name: "json by header", contentType: "application/json", data: []byte(`{"url": "a", "id": "i"}`), want: Source{URL: "a", ID: "i"}},
		{name: "msgpack", data: mp, want: Source{V: Version, ID: "m", URL: "https://x/m.csv"}},
		{name: "no url", data: []byte(`{"dataset": "x"}`), err: "no url"},
		{name: "unknown key", data: []byte(`{"url": "a", "ulr": "b"}`), err: "unknown field"},
		{name: "bad dataset", data: []byte(`{"url": "a", "dataset": "a.b"}`), err: "invalid dataset"},
		{name: "garbage", data: []byte("garbage"), err: "decode"},
		{name: "broken json", data: []byte(`{"url": `), err: "decode source json"},
		{name: "records path", data: []byte(`{"url": "a", "records": "data.items"}`), want: Source{URL: "a", Records: "data.items"}},
		{name: "bad records path", data: []byte(`{"url": "a", "records": "data."}`), err: `records path "data.": empty key`},
		{name: "records path of csv", data: []byte(`{"url": "a", "format": "csv", "records": "data"}`), err: "needs a JSON document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSource(tt.data, tt.contentType)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRecordsPath(t *testing.T) {
	tests := []struct {
		path string
		want []string
		err  string
	}{
		{path: ""},
		{path: "data", want: []string{"data"}},
		{path: "data.items", want: []string{"data", "items"}},
		{path: ".data.items", want: []string{"data", "items"}},
		{path: "a b.c-d", want: []string{"a b", "c-d"}},
		{path: ".", err: "empty key"},
		{path: "data..items", err: "empty key"},
		{path: "data.", err: "empty key"},
		{path: "..data", err: "empty key"},
		{path: strings.Repeat("a.", 32) + "a", err: "more than 32 keys"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := RecordsPath(tt.path)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.NoError(t, CheckFormat("JSON", "data"))
	require.NoError(t, CheckFormat("csv", ""))
	require.ErrorContains(t, CheckFormat("tsv", "data"), `records path "data": needs a JSON document, but the format is "tsv"`)
}

func TestCheckFormat(t *testing.T) {
	for _, tc := range []struct {
		format, records, err string
	}{
		{format: ""},
		{format: "CSV"},
		{format: " ndjson "},
		{format: "json", records: "data.items"},
		{format: "xlsx", err: `unknown format "xlsx": want csv, tsv, jsonl, json or parquet`},
		{format: "jsno", err: `unknown format "jsno"`},
		{format: "csv", records: "data", err: `records path "data": needs a JSON document`},
	} {
		t.Run(tc.format+"/"+tc.records, func(t *testing.T) {
			err := CheckFormat(tc.format, tc.records)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
	_, err := DecodeSource([]byte(`{"url": "https://x/a", "format": "xlsx"}`), "")
	require.ErrorContains(t, err, `unknown format "xlsx"`)
}
