// polars.mjs reads Parquet files with nodejs-polars, concatenates them the
// way a polars user does (pl.concat, how "diagonal": columns matched by
// name, a column a file lacks is null there, a column typed differently
// in two files is an error), and prints the table as JSON on stdout:
//
//   {"columns":[{"name":"a","type":"Int64"},...],"rows":[["1",...],...]}
//
// The file paths are argv[2:]. Int64 and UInt64 values are strings
// (exact); other numbers are numbers; null is null; dates and datetimes
// are ISO 8601 strings. On any error it prints the message on stderr and
// exits with status 1.

import pl from 'nodejs-polars';

function jsonValue(v) {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString();
  return v === undefined ? null : v;
}

try {
  const files = process.argv.slice(2);
  if (files.length === 0) throw new Error('no files given');
  const df = pl.concat(files.map((f) => pl.readParquet(f)), { how: 'diagonal' });
  const dtype = (name) => String(df.getColumn(name).dtype).replace(/^DataType\((.*)\)$/, '$1');
  const columns = df.columns.map((name) => ({ name, type: dtype(name) }));
  // Int64 as text: a JavaScript number would round beyond 2^53.
  const exact = (name) => ['Int64', 'UInt64'].includes(dtype(name));
  const series = df.columns.map((name) =>
    exact(name) ? df.getColumn(name).cast(pl.Utf8).toArray() : df.getColumn(name).toArray());
  const rows = [];
  for (let r = 0; r < df.height; r++) rows.push(series.map((s) => jsonValue(s[r])));
  process.stdout.write(JSON.stringify({ columns, rows }) + '\n');
} catch (err) {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
}
