// Package readertest lets tests read the Parquet and JSON-lines files the
// project writes with readers that share no code with it: DuckDB, through
// its official Node.js package @duckdb/node-api, and polars, through
// nodejs-polars, both pinned in node/package.json and node/package-lock.json.
//
// DuckDB runs SQL in an in-memory database, so a test can query files with
// read_parquet, read_json_auto, parquet_schema and parquet_metadata:
//
//	res := readertest.DuckDB(t, "SELECT id, name FROM read_parquet("+
//		readertest.Quote(path)+") ORDER BY id")
//
// The first call in a test process that finds node/node_modules missing, or
// installed from another package-lock.json, runs `npm install` in node/ (the
// registry's packages ship DuckDB's and polars' native libraries, so
// nothing else is downloaded). Installs from concurrent test processes are serialised with a
// lock file and moved into place with a rename, so a reader never sees a
// half-installed node_modules. Missing node or npm, or a failed install,
// fails the test: this package never skips.
package readertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Column is one column of a result: its name and its DuckDB type as DuckDB
// spells it (BIGINT, VARCHAR, DOUBLE, TIMESTAMP WITH TIME ZONE, INTEGER[],
// STRUCT("k" INTEGER), ...). ParquetColumnTypes fills Type differently: see
// there.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is what a query returned: its columns, and its rows with one value
// per column. Values are decoded from node/query.mjs's JSON, so they are nil,
// bool, float64, string, []any or map[string]any: BIGINT, UBIGINT, HUGEINT,
// DECIMAL and UUID come as decimal or canonical strings (exact); smaller
// integers, FLOAT and DOUBLE as float64 (NaN and infinities as strings);
// timestamps as ISO 8601 strings in UTC ("2024-01-02T03:04:05.123456Z",
// parse with time.RFC3339Nano); DATE as "2024-01-02"; BLOB as base64; LIST
// as []any; STRUCT as map[string]any; MAP as a []any of {"key","value"}
// objects.
type Result struct {
	Columns []Column
	Rows    [][]any
}

const (
	// queryTimeout bounds one query.mjs run.
	queryTimeout = 5 * time.Minute
	// installTimeout bounds one npm install run.
	installTimeout = 10 * time.Minute
	// markerFile, inside node_modules, holds the SHA-256 of the
	// package-lock.json it was installed from.
	markerFile = ".readertest-lock-sha256"
)

var (
	installOnce sync.Once
	installErr  error
)

// DuckDB runs sql (one or more statements separated by ';') in a fresh
// in-memory DuckDB whose time zone is UTC, and returns the result of the
// last statement. Any error, the SQL's own included, fails t with DuckDB's
// message.
func DuckDB(t testing.TB, sql string) Result {
	t.Helper()
	return DuckDBIn(t, nodeDir(t), sql)
}

// DuckDBIn is DuckDB run in folder wd, so that the query's relative paths
// are wd's.
func DuckDBIn(t testing.TB, wd, sql string) Result {
	t.Helper()
	return runNode(t, "DuckDB", "query.mjs", wd, sql)
}

// Polars reads the Parquet files with nodejs-polars and concatenates them
// as pl.concat(..., how="diagonal") does: columns matched by name, null
// where a file lacks one, and an error (failing t) when two files type a
// column differently. Column types are polars' dtype names ("Int64",
// "Float64", "String", "Datetime(Microseconds, UTC)"); Int64 values come
// as decimal strings, other numbers as float64, null as nil.
func Polars(t testing.TB, files ...string) Result {
	t.Helper()
	return runNode(t, "polars", "polars.mjs", "", "", files...)
}

// runNode runs one of node/'s scripts with stdin and args, in folder wd
// ("" for node/), and decodes the {"columns", "rows"} it prints.
func runNode(t testing.TB, reader, script, wd, stdin string, args ...string) Result {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("readertest: node is needed to run %s and is not in PATH (Debian: apt-get install nodejs npm): %v", reader, err)
	}
	dir := installedDir(t)
	if wd == "" {
		wd = dir
	}
	ctx, cancel := context.WithTimeout(t.Context(), queryTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = wd
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("readertest: %s failed (%v)\ninput:\n%s%s\nstderr:\n%s", reader, err, stdin, strings.Join(args, "\n"), stderr.String())
	}
	var out struct {
		Columns []Column `json:"columns"`
		Rows    [][]any  `json:"rows"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("readertest: decoding %s's output: %v\nstdout:\n%s\nstderr:\n%s", reader, err, stdout.String(), stderr.String())
	}
	return Result{Columns: out.Columns, Rows: out.Rows}
}

// NodeModules returns the node_modules folder the readers are installed
// in, for NODE_PATH when running a reader snippet as documented.
func NodeModules(t testing.TB) string {
	t.Helper()
	return filepath.Join(installedDir(t), "node_modules")
}

// ParquetColumnTypes returns each leaf column of the Parquet file at path,
// as DuckDB's parquet_schema reads it from the file's footer, in schema
// order. Name is the column's dotted path from the root ("id", "meta.k");
// Type is its physical type followed by its converted and logical types
// where the file sets them, e.g. "INT64" or "BYTE_ARRAY converted=UTF8
// logical=StringType()" (FIXED_LEN_BYTE_ARRAY carries its length, and
// DECIMAL its scale and precision). Two files whose results are equal have
// the same physical and logical type for every column.
func ParquetColumnTypes(t testing.TB, path string) []Column {
	t.Helper()
	res := DuckDB(t, "SELECT name, type, type_length, converted_type, scale, precision, logical_type, num_children "+
		"FROM parquet_schema("+Quote(path)+")")
	type frame struct {
		prefix string
		left   int
	}
	var stack []frame
	var cols []Column
	for i, row := range res.Rows {
		name, physical, length, converted, scale, precision, logical := str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]), str(row[6])
		children := 0
		if s := str(row[7]); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("readertest: parquet_schema(%s): num_children %q: %v", path, s, err)
			}
			children = n
		}
		if i == 0 {
			stack = append(stack, frame{left: children})
			continue
		}
		if len(stack) == 0 {
			t.Fatalf("readertest: parquet_schema(%s): more than one schema root; name one file", path)
		}
		top := &stack[len(stack)-1]
		top.left--
		full := name
		if top.prefix != "" {
			full = top.prefix + "." + name
		}
		if children > 0 {
			stack = append(stack, frame{prefix: full, left: children})
		} else {
			typ := physical
			if physical == "FIXED_LEN_BYTE_ARRAY" {
				typ += "(" + length + ")"
			}
			if converted != "" {
				typ += " converted=" + converted
			}
			if converted == "DECIMAL" {
				typ += " scale=" + scale + " precision=" + precision
			}
			if logical != "" {
				typ += " logical=" + fixBitWidth(logical)
			}
			cols = append(cols, Column{Name: full, Type: typ})
		}
		for len(stack) > 0 && stack[len(stack)-1].left <= 0 {
			stack = stack[:len(stack)-1]
		}
	}
	return cols
}

// fixBitWidth rewrites the bit width in DuckDB's text of an IntType, which
// it prints as a character ("IntType(bitWidth=@, isSigned=1)" for 64), as
// a number.
func fixBitWidth(logical string) string {
	const key = "bitWidth="
	i := strings.Index(logical, key)
	if i < 0 || i+len(key) >= len(logical) {
		return logical
	}
	j := i + len(key)
	if strings.HasPrefix(logical[j+1:], ",") || strings.HasPrefix(logical[j+1:], ")") {
		return logical[:j] + strconv.Itoa(int(logical[j])) + logical[j+1:]
	}
	return logical
}

// Corpus returns the data folder of the npm package vega-datasets (pinned
// beside DuckDB): real public files — CSV, TSV, JSON, Parquet, Arrow, PNG —
// that neither this project nor its tests wrote.
func Corpus(t testing.TB) string {
	t.Helper()
	return filepath.Join(installedDir(t), "node_modules", "vega-datasets", "data")
}

// installedDir returns the node/ folder once its npm packages are
// installed (at most one install per test process).
func installedDir(t testing.TB) string {
	t.Helper()
	dir := nodeDir(t)
	installOnce.Do(func() { installErr = ensureInstalled(dir) })
	if installErr != nil {
		t.Fatalf("readertest: installing the npm packages in %s: %v", dir, installErr)
	}
	return dir
}

// Quote returns s as a SQL string literal, in single quotes with any single
// quote doubled, to put a file path into a query.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// str returns v when it is a string, and "" for nil.
func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// nodeDir returns the node/ folder beside this source file.
func nodeDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("readertest: cannot locate readertest.go with runtime.Caller")
	}
	dir := filepath.Join(filepath.Dir(file), "node")
	if _, err := os.Stat(filepath.Join(dir, "query.mjs")); err != nil {
		t.Fatalf("readertest: %v (was the test built with -trimpath? readertest needs its source folder)", err)
	}
	return dir
}

// ensureInstalled makes dir/node_modules hold what dir/package-lock.json
// pins, running npm install when it does not.
func ensureInstalled(dir string) error {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	if installed(dir, want) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is needed to install node_modules and is not in PATH: %w", err)
	}

	unlock, err := lockFile(filepath.Join(dir, ".install.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have installed it while this one waited.
	if installed(dir, want) {
		return nil
	}

	staging, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	for _, name := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(staging, name), data, 0o644); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	// npm install, not npm ci: it installs the versions package-lock.json
	// pins just the same, but tolerates what ci refuses, optional packages
	// of platforms (nodejs-polars' native builds for other systems) that
	// the registry in use does not serve.
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund")
	cmd.Dir = staging
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install: %w\n%s", err, out)
	}
	modules := filepath.Join(staging, "node_modules")
	if err := os.WriteFile(filepath.Join(modules, markerFile), []byte(want+"\n"), 0o644); err != nil {
		return err
	}
	target := filepath.Join(dir, "node_modules")
	// A stale or partial node_modules goes into staging, removed with it.
	if err := os.Rename(target, filepath.Join(staging, "old")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(modules, target)
}

// installed reports whether dir/node_modules was installed from the
// package-lock.json whose SHA-256 is want.
func installed(dir, want string) bool {
	got, err := os.ReadFile(filepath.Join(dir, "node_modules", markerFile))
	return err == nil && strings.TrimSpace(string(got)) == want
}
