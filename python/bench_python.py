"""Validations per second from one Python thread: sessionward vs the baselines a Python
service would write instead. Not run by the tests (it takes a minute and needs a quiet
machine):

    scripts/test-python.sh            # builds the package into .venv (release)
    .venv/bin/pip install cachetools  # optional baseline
    .venv/bin/python python/bench_python.py [--sizes 100000 1000000] [--sample 200000]

For each table size N, N sessions are issued, then a shuffled sample of their tokens is
validated (every lookup a hit, as on a busy gateway), by:

- ``Org.validate``: one call per token (token shape and checksum, SHA-256, shard lookup,
  idle/absolute check, last-activity refresh; returns a ``Session``);
- ``Org.validate_many``: batches of 10,000 tokens (one call per batch, GIL released);
- a plain ``dict`` token -> [last_activity, idle, absolute_deadline] doing the same idle and
  absolute checks and the refresh, reading ``time.time()`` per call as the engine reads its
  clock (no token check, no hashing, tokens stored in clear: what sessionward refuses to do);
- ``cachetools.TTLCache`` with sliding expiry (get, then re-set to refresh), if installed.

Rates are wall-clock, best of `--repeat` runs. The machine (cores, load) is printed with the
table, because a loaded machine halves these numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Callable

import sessionward as sw

BATCH = 10_000
IP = "10.0.0.1"


def machine() -> str:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{os.cpu_count()} cores ({model}), load average {load}, "
        f"Python {platform.python_version()}, sessionward {sw.__version__}"
    )


def best_rate(run: Callable[[], int], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run()
        best = max(best, count / (time.perf_counter() - start))
    return best


def build_org(size: int) -> tuple[sw.Org, list[str]]:
    org = sw.Org(sw.OrgSettings(trusted_ranges=["0.0.0.0/0", "::/0"]))
    org.add_profile(sw.Profile("staff"))
    users = [f"user{i}" for i in range(max(1, size // 100))]
    for user in users:
        org.add_user(user, "staff")
    tokens = []
    login = org.login
    for i in range(size):
        outcome = login(users[i % len(users)], IP)
        assert isinstance(outcome, sw.Issued)
        tokens.append(outcome.token)
    return org, tokens


def bench_size(size: int, sample_size: int, repeat: int) -> list[tuple[str, float]]:
    started = time.perf_counter()
    org, tokens = build_org(size)
    print(f"  issued {size:,} sessions in {time.perf_counter() - started:.1f} s", flush=True)
    rng = random.Random(7)
    sample = [tokens[rng.randrange(size)] for _ in range(sample_size)]
    rows: list[tuple[str, float]] = []

    validate = org.validate

    def single() -> int:
        for token in sample:
            validate(token, IP)
        return len(sample)

    rows.append(("Org.validate (one call per token)", best_rate(single, repeat)))

    validate_many = org.validate_many

    def batched() -> int:
        for first in range(0, len(sample), BATCH):
            validate_many(sample[first : first + BATCH], IP)
        return len(sample)

    rows.append((f"Org.validate_many (batches of {BATCH:,})", best_rate(batched, repeat)))
    del org

    now = int(time.time())
    table: dict[str, list[int]] = {token: [now, 7200, now + 43200] for token in tokens}
    clock = time.time

    def plain_dict() -> int:
        get = table.get
        for token in sample:
            record = get(token)
            if record is None:
                continue
            at = int(clock())
            if at >= min(record[0] + record[1], record[2]):
                continue
            record[0] = at
        return len(sample)

    rows.append(("dict + idle/absolute checks (baseline)", best_rate(plain_dict, repeat)))
    del table

    try:
        from cachetools import TTLCache
    except ImportError:
        print("  cachetools not installed: TTLCache baseline skipped", flush=True)
    else:
        cache: TTLCache[str, str] = TTLCache(maxsize=size * 2, ttl=7200)
        for token in tokens:
            cache[token] = "user"

        def ttl_cache() -> int:
            get = cache.get
            for token in sample:
                value = get(token)
                if value is not None:
                    cache[token] = value  # sliding expiry: refresh on use
            return len(sample)

        rows.append(("cachetools.TTLCache get + refresh (baseline)", best_rate(ttl_cache, repeat)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=200_000, help="validations per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best)")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    results: dict[int, list[tuple[str, float]]] = {}
    for size in args.sizes:
        print(f"table of {size:,} sessions:", flush=True)
        results[size] = bench_size(size, args.sample, args.repeat)
    names = [name for name, _ in results[args.sizes[0]]]
    width = max(len(name) for name in names)
    labels = [f"{size:,} sessions" for size in args.sizes]
    cell = max(16, *(len(label) for label in labels))
    header = f"| {'validations per second, one thread':<{width}} |" + "".join(
        f" {label:>{cell}} |" for label in labels
    )
    print()
    print(header)
    print("|" + "-" * (width + 2) + "|" + "".join("-" * (cell + 1) + ":|" for _ in args.sizes))
    for name in names:
        cells = ""
        for size in args.sizes:
            rate = dict(results[size]).get(name)
            cells += f" {f'{rate / 1e6:.2f} M/s' if rate else 'n/a':>{cell}} |"
        print(f"| {name:<{width}} |{cells}")
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
