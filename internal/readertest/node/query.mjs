// query.mjs runs SQL in an in-memory DuckDB and prints the result of the
// last statement as JSON on stdout:
//
//   {"columns":[{"name":"a","type":"BIGINT"},...],"rows":[["1",...],...]}
//
// The SQL comes from argv[2] or, when no argument is given, from stdin.
// Several statements separated by ';' are run in order; only the last one's
// result is printed. The session time zone is UTC.
//
// Values are made JSON-safe:
//   - BIGINT, UBIGINT, HUGEINT, UHUGEINT, DECIMAL, UUID: strings (exact);
//     TINYINT..UINTEGER, FLOAT, DOUBLE: numbers (NaN/Infinity as strings)
//   - TIMESTAMP[_S|_MS|_NS] and TIMESTAMP WITH TIME ZONE: ISO 8601 in UTC,
//     e.g. "2024-01-02T03:04:05.123456Z" (fraction digits follow the unit:
//     0 for _S, 3 for _MS, 6 for micros, 9 for _NS); infinities and values
//     outside JavaScript's date range keep DuckDB's text form
//   - DATE, TIME, INTERVAL, ENUM: DuckDB's own JSON form (strings/objects)
//   - BLOB: base64
//   - LIST/ARRAY: arrays, STRUCT: objects, MAP: [{"key":..,"value":..}]
//   - NULL: null
//
// On any error it prints the message on stderr and exits with status 1.

import {
  DuckDBInstance,
  DuckDBTypeId,
  JsonDuckDBValueConverter,
} from '@duckdb/node-api';

const FRACTION_DIGITS = {
  [DuckDBTypeId.TIMESTAMP_S]: 0,
  [DuckDBTypeId.TIMESTAMP_MS]: 3,
  [DuckDBTypeId.TIMESTAMP]: 6,
  [DuckDBTypeId.TIMESTAMP_TZ]: 6,
  [DuckDBTypeId.TIMESTAMP_NS]: 9,
};

// ticksOf returns the raw tick count of a timestamp value of any unit.
function ticksOf(value) {
  for (const k of ['seconds', 'millis', 'micros', 'nanos']) {
    if (typeof value[k] === 'bigint') return value[k];
  }
  return undefined;
}

// isoTimestamp formats ticks (of 10^-digits seconds) as ISO 8601 UTC, or
// returns undefined when JavaScript's Date cannot represent the instant.
function isoTimestamp(ticks, digits) {
  const perSecond = 10n ** BigInt(digits);
  let seconds = ticks / perSecond;
  let frac = ticks % perSecond;
  if (frac < 0n) {
    frac += perSecond;
    seconds -= 1n;
  }
  const ms = Number(seconds) * 1000;
  if (!Number.isSafeInteger(ms) || Math.abs(ms) > 8.64e15) return undefined;
  const base = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z or ±YYYYYY-...
  const head = base.slice(0, base.lastIndexOf('.'));
  const tail = digits > 0 ? '.' + frac.toString().padStart(digits, '0') : '';
  return head + tail + 'Z';
}

function convert(value, type, converter) {
  if (value == null) return null;
  const digits = FRACTION_DIGITS[type.typeId];
  if (digits !== undefined) {
    const ticks = ticksOf(value);
    const iso = ticks === undefined ? undefined : isoTimestamp(ticks, digits);
    return iso ?? String(value);
  }
  if (type.typeId === DuckDBTypeId.BLOB) {
    return Buffer.from(value.bytes).toString('base64');
  }
  return JsonDuckDBValueConverter(value, type, converter);
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function main() {
  const sql = process.argv.length > 2 ? process.argv[2] : await readStdin();
  if (sql.trim() === '') throw new Error('query.mjs: empty SQL');

  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    const statements = await connection.extractStatements(sql);
    if (statements.count === 0) throw new Error('query.mjs: no SQL statement');
    let reader;
    for (let i = 0; i < statements.count; i++) {
      const prepared = await statements.prepare(i);
      reader = await prepared.runAndReadAll();
    }
    const names = reader.columnNames();
    const types = reader.columnTypes();
    const out = {
      columns: names.map((name, i) => ({ name, type: types[i].toString() })),
      rows: reader.convertRows(convert),
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

main().catch((err) => {
  process.stderr.write(String(err?.message ?? err) + '\n');
  process.exitCode = 1;
});
