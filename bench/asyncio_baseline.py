#!/usr/bin/env python3
"""The trainfeed bench job in Python: asyncio + aiohttp + a process pool.

Fetches URL/src/<n>.csv for n in [0, SOURCES) concurrently with one aiohttp
ClientSession (connector limit 64), parses each body in a
concurrent.futures.ProcessPoolExecutor with the csv module into typed rows
(id int, value float, flag bool, name str, text str) and encodes them as JSON
lines there, then writes JSONL chunks of CHUNK_RECORDS records (temp file,
fsync, rename) from a writer thread, so the event loop never blocks on disk.

The last line printed is JSON: {"elapsed_s": ..., "records": ..., "chunks": ...}.
`trainfeed bench --python` runs it against its own server.
"""

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import aiohttp

CONVERT = {
    "id": int,
    "value": float,
    "flag": lambda s: s.lower() == "true",
    "name": str,
    "text": str,
}


def parse(body: bytes) -> list[str]:
    """Parse one CSV body into typed rows, returned as JSON lines."""
    reader = csv.reader(io.StringIO(body.decode("utf-8")))
    header = next(reader)
    convs = [CONVERT[name] for name in header]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    lines = []
    for rec in reader:
        if len(rec) != len(header):
            raise ValueError(f"line {reader.line_num}: {len(rec)} fields, want {len(header)}")
        row = {name: conv(v) for name, conv, v in zip(header, convs, rec)}
        lines.append(dumps(row))
    return lines


class ChunkWriter:
    """Cuts JSON lines into chunk files of exactly `size` records."""

    def __init__(self, out: str, size: int):
        self.out, self.size = out, size
        self.held: list[str] = []
        self.files: list[str] = []
        self.records = 0

    def add(self, lines: list[str]) -> None:
        self.held.extend(lines)
        while len(self.held) >= self.size:
            self._write(self.held[: self.size])
            del self.held[: self.size]

    def close(self) -> None:
        if self.held:
            self._write(self.held)
            self.held = []
        fd = os.open(self.out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, lines: list[str]) -> None:
        name = os.path.join(self.out, f"chunk-{len(self.files) + 1:06d}.jsonl")
        tmp = os.path.join(self.out, ".tmp-" + os.path.basename(name))
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name)
        self.files.append(name)
        self.records += len(lines)


async def run(url: str, sources: int, out: str, chunk_records: int, concurrency: int) -> ChunkWriter:
    loop = asyncio.get_running_loop()
    writer = ChunkWriter(out, chunk_records)
    queue: asyncio.Queue = asyncio.Queue(maxsize=concurrency)

    async def write_all() -> None:
        # One thread does all the disk work, in arrival order.
        with ThreadPoolExecutor(max_workers=1) as disk:
            while (lines := await queue.get()) is not None:
                await loop.run_in_executor(disk, writer.add, lines)
            await loop.run_in_executor(disk, writer.close)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
    with ProcessPoolExecutor() as pool:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(n: int) -> None:
                async with session.get(f"{url}/src/{n}.csv") as resp:
                    resp.raise_for_status()
                    body = await resp.read()
                lines = await loop.run_in_executor(pool, parse, body)
                await queue.put(lines)

            writing = asyncio.create_task(write_all())
            try:
                async with asyncio.TaskGroup() as tg:
                    for n in range(sources):
                        tg.create_task(one(n))
            finally:
                await queue.put(None)
                await writing
    return writer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--sources", type=int, required=True, help="number of sources N")
    ap.add_argument("--out", required=True, help="existing output folder")
    ap.add_argument("--rows", type=int, default=0, help="rows per source, to check the total (0: no check)")
    ap.add_argument("--chunk-records", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()

    start = time.perf_counter()
    writer = asyncio.run(run(args.url.rstrip("/"), args.sources, args.out, args.chunk_records, args.concurrency))
    elapsed = time.perf_counter() - start
    if args.rows and writer.records != args.sources * args.rows:
        print(f"wrote {writer.records} records, want {args.sources * args.rows}", file=sys.stderr)
        return 1
    print(json.dumps({"elapsed_s": elapsed, "records": writer.records, "chunks": len(writer.files)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
