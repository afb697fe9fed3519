"""Delayed-feedback loaders at full size: wall time and peak memory on generated files (issue #5).

Usage::

    python experiments/bench/delayed_loaders.py all --dir /tmp/delayed_loaders          # Criteo 15.9 M + Taobao 100 M
    python experiments/bench/delayed_loaders.py all --dir /tmp/delayed_loaders --taobao-rows 20000000   # quicker
    python experiments/bench/delayed_loaders.py generate criteo --dir /tmp/x --rows 15900000
    python experiments/bench/delayed_loaders.py load criteo --dir /tmp/x                 # one load, JSON out

``generate`` writes a file in exactly the format the loader reads (never into the repository):

- Criteo conversion logs (``recsci.delayed.criteo``), ``data.txt``: tab-separated, no header; click unix
  time (s), conversion unix time (s) or empty, 8 integer features (heavy-tailed counts, 10-40% empty, a few
  negatives), 9 categorical features (8-hex-digit strings, Zipf-distributed over vocabularies of 20 to
  2 M values, 5-30% empty); 60 days of clicks, ~23% converting after a delay of minutes to weeks.
- Taobao UserBehavior (``recsci.delayed.taobao``), ``UserBehavior.csv``: ``user,item,category,behavior,ts``
  without header, rows grouped by user and time-sorted within a user as in the official file; ~1 M users
  per 100 M rows, 4.16 M items (popularity-skewed) in 9,439 categories; per (user, item) pair Geom(0.65)
  views, cart/fav/buy with the official file's shares (pv 89.5%, cart 5.5%, fav 2.9%, buy 2.0%), buys
  mostly after a cart or fav, ~0.05% of rows outside the 9-day window.

``load`` runs the real loader (``CriteoConversionLogs(...).load()`` / ``TaobaoUserBehavior(...).load()``,
no cache) in a fresh process and prints its wall and CPU seconds (all threads: pyarrow parses on
``pyarrow.cpu_count()`` threads) and peak resident memory (``ru_maxrss``); ``all`` generates, loads each file in its own subprocess (so each peak is that loader's
alone), prints a table and deletes the files. ``--mem-limit-gib`` caps the loader's address space
(RLIMIT_AS), so a loader that needs more fails with MemoryError instead of pushing a shared machine into
the OOM killer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow

CRITEO_ROWS = 15_900_000
TAOBAO_ROWS = 100_150_807  # the official file
WINDOW_START = 1511539200  # 2017-11-25 00:00:00 UTC+8 (recsci.delayed.taobao.WINDOW_START)
DAY = 86_400


# --- writing delimited text without a per-row Python loop -------------------------------------------------


def as_bytes(values: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """Decimal (or already byte-string) column as a fixed-width ``S`` array; ``missing`` rows become empty."""
    out = values if values.dtype.kind == "S" else values.astype("S")
    if missing is not None and missing.any():
        out = out.copy()
        out[missing] = b""
    return out


def delimited_lines(columns: list[np.ndarray], sep: bytes) -> bytes:
    """``sep``-joined rows ending in ``\\n`` from ``S`` columns, assembled with array scatters only."""
    n = columns[0].shape[0]
    lengths = [np.char.str_len(c).astype(np.int64) for c in columns]
    row_len = sum(lengths) + len(columns)  # one separator (or the newline) after each field
    row_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_len, out=row_start[1:])
    buf = np.full(int(row_start[-1]), sep[0], dtype=np.uint8)
    offset = row_start[:-1].copy()
    for column, length in zip(columns, lengths, strict=True):
        width = column.dtype.itemsize
        if width:
            chars = column.view(np.uint8).reshape(n, width)
            valid = np.arange(width)[None, :] < length[:, None]
            buf[(offset[:, None] + np.arange(width)[None, :])[valid]] = chars[valid]
        offset += length + 1
    buf[row_start[1:] - 1] = ord("\n")
    return buf.tobytes()


def zipf_index(rng: np.random.Generator, size: int, vocab: int, power: float = 2.5) -> np.ndarray:
    """Ids in ``[0, vocab)``, skewed towards small ids (``floor(vocab * u^power)``)."""
    return np.minimum((vocab * rng.random(size) ** power).astype(np.int64), vocab - 1)


# --- Criteo conversion logs ---------------------------------------------------------------------------------

CRITEO_VOCAB = (2_000_000, 500_000, 100_000, 20_000, 5_000, 1_000, 300, 50, 20)
CRITEO_CAT_MISSING = (0.05, 0.1, 0.3, 0.05, 0.2, 0.1, 0.05, 0.15, 0.05)
CRITEO_INT_MISSING = (0.1, 0.4, 0.2, 0.3, 0.1, 0.35, 0.25, 0.15)


def criteo_chunks(rows: int, seed: int, chunk: int = 1_000_000) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    vocabs = [
        np.char.encode(np.char.mod("%08X", rng.integers(0, 2**32, size=v, dtype=np.int64)), "ascii")
        for v in CRITEO_VOCAB
    ]
    start, span = 1_396_310_400, 60 * DAY  # 2014-04-01, 60 days
    edges = np.linspace(0, span, -(-rows // chunk) + 1)
    for k, lo in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - lo)
        click = start + np.sort(rng.uniform(edges[k], edges[k + 1], size=n)).astype(np.int64)
        converts = rng.random(n) < 0.23
        delay = np.where(rng.random(n) < 0.5, rng.exponential(3600.0, n), rng.exponential(5 * DAY, n))
        conv = click + np.maximum(delay, 1.0).astype(np.int64)
        columns = [as_bytes(click), as_bytes(conv, ~converts)]
        for miss in CRITEO_INT_MISSING:
            v = np.floor(rng.lognormal(1.0, 2.0, n)).astype(np.int64)
            v[rng.random(n) < 0.001] = -1
            columns.append(as_bytes(v, rng.random(n) < miss))
        for vocab, miss in zip(vocabs, CRITEO_CAT_MISSING, strict=True):
            columns.append(as_bytes(vocab[zipf_index(rng, n, vocab.size)], rng.random(n) < miss))
        yield delimited_lines(columns, b"\t")


# --- Taobao UserBehavior ------------------------------------------------------------------------------------

TAOBAO_ITEMS, TAOBAO_CATEGORIES = 4_162_024, 9_439
BEHAVIOR_NAMES = np.array([b"pv", b"cart", b"fav", b"buy"])


def taobao_chunks(rows: int, seed: int, chunk: int = 5_000_000) -> Iterator[bytes]:
    rng = np.random.default_rng(seed)
    item_cat = rng.integers(1, 5_000_000, size=TAOBAO_CATEGORIES)[
        zipf_index(rng, TAOBAO_ITEMS, TAOBAO_CATEGORIES)
    ]
    item_ids = rng.choice(5_200_000, size=TAOBAO_ITEMS, replace=False) + 1
    rows_per_pair = 1.664  # 0.97 * E[Geom(0.65)] views + cart + fav + buy rows, see below
    written, next_user = 0, 1
    while written < rows:
        pairs = max(1, int(min(chunk, rows - written) / rows_per_pair))
        per_user = 1 + rng.poisson(51, size=pairs // 40 + 10)  # more users than needed: cut below
        user = np.repeat(np.arange(next_user, next_user + per_user.size), per_user)[:pairs]
        next_user = int(user[-1]) + 1
        item = zipf_index(rng, pairs, TAOBAO_ITEMS, power=3.0)
        first = WINDOW_START - 3600 + rng.uniform(0, 9 * DAY + 3700, size=pairs)  # a few rows fall outside
        views = rng.geometric(0.65, size=pairs) * (rng.random(pairs) > 0.03)  # 3%: no view (no click)
        cart = rng.random(pairs) < 0.09
        fav = rng.random(pairs) < 0.048
        buy = rng.random(pairs) < np.where(cart | fav, 0.15, 0.018)
        pair_rows = [np.repeat(np.arange(pairs), views)]
        offsets = rng.exponential(4 * 3600.0, size=pair_rows[0].size)
        starts = np.cumsum(views) - views
        offsets[starts[views > 0]] = 0.0  # each pair's first view at `first`
        times = [first[pair_rows[0]] + offsets]
        kinds = [np.zeros(pair_rows[0].size, dtype=np.int64)]
        for code, mask, scale in ((1, cart, 1800.0), (2, fav, 3600.0), (3, buy, 2 * 3600.0)):
            idx = np.flatnonzero(mask)
            pair_rows.append(idx)
            shift = rng.lognormal(np.log(scale), 1.5, size=idx.size) * np.where(
                rng.random(idx.size) < 0.02, -1, 1
            )
            times.append(first[idx] + shift)
            kinds.append(np.full(idx.size, code))
        p, t, kind = np.concatenate(pair_rows), np.concatenate(times).astype(np.int64), np.concatenate(kinds)
        order = np.lexsort((t, user[p]))
        p, t, kind = p[order], t[order], kind[order]
        take = min(p.size, rows - written)
        p, t, kind = p[:take], t[:take], kind[:take]
        items = item_ids[item[p]]
        columns = [
            as_bytes(user[p]),
            as_bytes(items),
            as_bytes(item_cat[item[p]]),
            BEHAVIOR_NAMES[kind],
            as_bytes(t),
        ]
        written += take
        yield delimited_lines(columns, b",")


# --- commands -----------------------------------------------------------------------------------------------

FILES = {"criteo": "data.txt", "taobao": "UserBehavior.csv"}


def generate(kind: str, directory: Path, rows: int, seed: int) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / kind / FILES[kind]
    path.parent.mkdir(exist_ok=True)
    chunks = criteo_chunks(rows, seed) if kind == "criteo" else taobao_chunks(rows, seed)
    wall = time.perf_counter()
    with path.open("wb") as f:
        for block in chunks:
            f.write(block)
    return {
        "file": str(path),
        "rows": rows,
        "bytes": path.stat().st_size,
        "generate_s": time.perf_counter() - wall,
    }


def load(kind: str, directory: Path, chunk_rows: int | None) -> dict:
    """One uncached load with the real loader; this process's wall/CPU seconds and peak memory."""
    root = str(directory / kind)
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "criteo":
        from recsci.delayed.criteo import CriteoConversionLogs

        source = CriteoConversionLogs(root, **({"chunk_rows": chunk_rows} if chunk_rows else {}))
    else:
        from recsci.delayed.taobao import TaobaoUserBehavior

        source = TaobaoUserBehavior(root, **({"chunk_rows": chunk_rows} if chunk_rows else {}))
    log = source.load()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "loader": type(source).__name__,
        "clicks": len(log),
        "fields": len(log.field_names),
        "conversion_rate": float(np.isfinite(log.conv_ts).mean()),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
        "arrow_threads": pyarrow.cpu_count(),
        "result_gib": sum(a.nbytes for a in (log.click_ts, log.conv_ts, log.features, log.engagement_ts))
        / 2**30,
    }


def load_in_subprocess(kind: str, directory: Path, mem_limit_gib: float, chunk_rows: int | None) -> dict:
    command = [
        sys.executable,
        __file__,
        "load",
        kind,
        "--dir",
        str(directory),
        "--mem-limit-gib",
        str(mem_limit_gib),
    ]
    if chunk_rows:
        command += ["--chunk-rows", str(chunk_rows)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {
            "error": done.stderr.strip().splitlines()[-1]
            if done.stderr.strip()
            else f"exit {done.returncode}"
        }
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["all", "generate", "load"])
    parser.add_argument("kind", nargs="?", choices=["criteo", "taobao"], help="for generate / load")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/delayed_loaders"))
    parser.add_argument("--rows", type=int, help="generate: rows (default: 15.9 M Criteo, 100 M Taobao)")
    parser.add_argument("--criteo-rows", type=int, default=CRITEO_ROWS)
    parser.add_argument("--taobao-rows", type=int, default=TAOBAO_ROWS)
    parser.add_argument("--chunk-rows", type=int, help="loader chunk_rows (default: the loader's)")
    parser.add_argument(
        "--mem-limit-gib", type=float, default=20.0, help="RLIMIT_AS (address space, not RSS) of each load"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="all: keep the generated files")
    parser.add_argument("--json", type=Path, help="all: write the results here")
    args = parser.parse_args()
    if Path(args.dir).resolve().is_relative_to(Path(__file__).resolve().parents[2]):
        parser.error("--dir must be outside the repository (the files are GiBs)")

    if args.command == "load":
        limit = int(args.mem_limit_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(json.dumps(load(args.kind, args.dir, args.chunk_rows)))
        return
    if args.command == "generate":
        rows = args.rows or (CRITEO_ROWS if args.kind == "criteo" else TAOBAO_ROWS)
        print(json.dumps(generate(args.kind, args.dir, rows, args.seed)))
        return

    results = {}
    try:
        for kind, rows in (("criteo", args.criteo_rows), ("taobao", args.taobao_rows)):
            if rows <= 0:
                continue
            print(
                f"[{kind}] generating {rows:,} rows in {args.dir} (load {os.getloadavg()[0]:.2f}) ...",
                flush=True,
            )
            info = generate(kind, args.dir, rows, args.seed)
            print(
                f"[{kind}] {info['bytes'] / 2**30:.2f} GiB in {info['generate_s']:.0f} s; loading ...",
                flush=True,
            )
            load_avg = os.getloadavg()
            info.update(load_in_subprocess(kind, args.dir, args.mem_limit_gib, args.chunk_rows))
            info["load_average_at_start"] = [round(x, 2) for x in load_avg]
            info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            results[kind] = info
            print(f"[{kind}] {json.dumps(info)}", flush=True)
            if not args.keep:
                shutil.rmtree(args.dir / kind)
    finally:
        if not args.keep and args.dir.exists():
            shutil.rmtree(args.dir)
    print(
        "\n| file | rows | size | clicks | load wall (s) | load CPU (s) | peak RSS (GiB) | ClickLog (GiB) | load avg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for kind, r in results.items():
        if "error" in r:
            print(
                f"| {kind} | {r['rows']:,} | {r['bytes'] / 2**30:.2f} GiB | failed: {r['error']} | | | | | |"
            )
            continue
        print(
            f"| {FILES[kind]} | {r['rows']:,} | {r['bytes'] / 2**30:.2f} GiB | {r['clicks']:,} | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['peak_rss_gib']:.2f} | {r['result_gib']:.2f} | "
            f"{r['load_average_at_start'][0]:.1f} -> {r['load_average_at_end'][0]:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
