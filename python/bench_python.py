"""Validations per second from one Python thread: sessionward vs the baselines a Python
service would write instead. Not run by the tests (it takes a few minutes and needs a quiet
machine):

    scripts/test-python.sh                   # builds the package into .venv (LTO profile)
    .venv/bin/pip install cachetools redis   # optional baselines
    .venv/bin/python python/bench_python.py [--sizes 100000 1000000] [--sample 200000] [--repeat 3]

For each table size N, N sessions are issued, then a shuffled sample of their tokens is
validated (every lookup a hit, as on a busy gateway), by:

- ``Org.validate``: one call per token (token shape and checksum, SHA-256, shard lookup,
  idle/absolute check, last-activity refresh; returns a ``Session``);
- ``Org.validate_many``: batches of 10,000 tokens (one call per batch, GIL released; returns
  a list of ``Session`` objects and refusals);
- ``Org.check_many``: the same batches, returning one code byte per token (GIL released; from
  1,024 tokens the batch is shared with one helper thread, so on two cores it uses both), and
  again in batches of 1,000, which run on the calling thread only;
- a plain ``dict`` token -> [last_activity, idle, absolute_deadline] doing the same idle and
  absolute checks and the refresh, reading ``time.time()`` per call as the engine reads its
  clock (no token check, no hashing, tokens stored in clear: what sessionward refuses to do);
- ``cachetools.TTLCache`` with sliding expiry (get, then re-set to refresh), if installed;
- Redis, if ``redis-server`` is on PATH and the ``redis`` package is installed: a throwaway
  server on a free local port (no persistence), redis-py ``GET`` per token then the same
  idle and absolute checks (the refresh, a second round trip, is not counted). Its sample is
  smaller (round trips are slow); the rate is comparable all the same.

Every timed run gets its own fresh copies of the sampled tokens, made round by round just
before each round is timed (1,000 tokens for the one-call-per-token loops, one batch for the
batched calls): a service reads each token out of a request header just before it checks
it, so the ``str`` is new, in cache and has no cached hash. Copying the whole sample up front
instead would leave ~22 MB of ``str`` objects out of cache and time a cache miss per token
that no real request pays (perf: 17 % of ``Org.validate`` at 100,000 sessions, in
``listiter_next``), and reusing the issued ``str`` objects would also let the ``dict`` reuse
hashes it computed in earlier runs. Only the calls are timed, not the copying. Each rate is
the median of ``--repeat`` runs, wall clock; the ratio column divides it by the ``dict``
baseline of the same run. The machine (cores, load) is printed with the table: a loaded
machine halves these numbers, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sessionward as sw

BATCH = 10_000
# Below the binding's threshold for sharing a `check_many` batch with its helper thread.
ONE_THREAD_BATCH = 1_000
# Tokens per timed round of the one-call-per-token loops (~110 KB of fresh `str`s: in cache).
ROUND = 1_000
IP = "10.0.0.1"
REDIS_SAMPLE = 20_000
DICT = "dict + idle/absolute checks (baseline)"


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


def fresh_copies(tokens: list[str]) -> list[str]:
    """New ``str`` objects equal to ``tokens``, made one after another (as request parsing
    would make them), with no hash cached yet."""
    return [(token + "#")[:-1] for token in tokens]


def median_rate(
    run: Callable[[list[str]], int], sample: list[str], repeat: int, round_size: int = ROUND
) -> float:
    """Median rate of ``run`` over ``repeat`` runs of ``sample``, each run called round by round
    (``round_size`` tokens at a time) on fresh copies made just before the round is timed."""
    rates = []
    for _ in range(repeat):
        count = 0
        elapsed = 0.0
        for first in range(0, len(sample), round_size):
            tokens = fresh_copies(sample[first : first + round_size])
            start = time.perf_counter()
            count += run(tokens)
            elapsed += time.perf_counter() - start
        rates.append(count / elapsed)
    return statistics.median(rates)


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[Any]:
    """A throwaway redis-server on a free local port and a client for it, or None (with a
    printed note) when the server or the Python package is missing."""
    server = shutil.which("redis-server")
    if server is None:
        print("  redis-server not on PATH: Redis comparison skipped", flush=True)
        yield None
        return
    try:
        import redis
    except ImportError:
        print("  the redis package is not installed: Redis comparison skipped", flush=True)
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            print("  redis-server did not start: Redis comparison skipped", flush=True)
            yield None
            return
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def bench_size(size: int, sample_size: int, repeat: int) -> list[tuple[str, float]]:
    started = time.perf_counter()
    org, tokens = build_org(size)
    print(f"  issued {size:,} sessions in {time.perf_counter() - started:.1f} s", flush=True)
    rng = random.Random(7)
    sample = [tokens[rng.randrange(size)] for _ in range(sample_size)]
    rows: list[tuple[str, float]] = []

    validate = org.validate

    def single(tokens: list[str]) -> int:
        for token in tokens:
            validate(token, IP)
        return len(tokens)

    rows.append(("Org.validate (one call per token)", median_rate(single, sample, repeat)))

    validate_many = org.validate_many

    def batched(batch: list[str]) -> int:
        validate_many(batch, IP)
        return len(batch)

    rows.append(
        (f"Org.validate_many (batches of {BATCH:,})", median_rate(batched, sample, repeat, BATCH))
    )

    check_many = org.check_many

    def checked(batch: list[str]) -> int:
        codes = check_many(batch, IP)
        assert codes.count(0) == len(batch)
        return len(batch)

    rows.append(
        (
            f"Org.check_many (batches of {BATCH:,}: this thread and the helper thread)",
            median_rate(checked, sample, repeat, BATCH),
        )
    )
    # Batches shorter than the binding's PARALLEL_MIN_TOKENS (1,024) run on the calling
    # thread only: the one-thread figure.
    rows.append(
        (
            f"Org.check_many (batches of {ONE_THREAD_BATCH:,}: this thread only)",
            median_rate(checked, sample, repeat, ONE_THREAD_BATCH),
        )
    )
    del org

    now = int(time.time())
    table: dict[str, list[int]] = {token: [now, 7200, now + 43200] for token in tokens}
    clock = time.time

    def plain_dict(tokens: list[str]) -> int:
        get = table.get
        for token in tokens:
            record = get(token)
            if record is None:
                continue
            at = int(clock())
            if at >= min(record[0] + record[1], record[2]):
                continue
            record[0] = at
        return len(tokens)

    rows.append((DICT, median_rate(plain_dict, sample, repeat)))
    del table

    try:
        from cachetools import TTLCache
    except ImportError:
        print("  cachetools not installed: TTLCache baseline skipped", flush=True)
    else:
        cache: TTLCache[str, str] = TTLCache(maxsize=size * 2, ttl=7200)
        for token in tokens:
            cache[token] = "user"

        def ttl_cache(tokens: list[str]) -> int:
            get = cache.get
            for token in tokens:
                value = get(token)
                if value is not None:
                    cache[token] = value  # sliding expiry: refresh on use
            return len(tokens)

        rows.append(
            (
                "cachetools.TTLCache get + refresh (baseline)",
                median_rate(ttl_cache, sample, repeat),
            )
        )
        del cache

    with redis_server() as client:
        if client is not None:
            value = f"{now},7200,{now + 43200}".encode()
            pipe = client.pipeline(transaction=False)
            for index, token in enumerate(tokens):
                pipe.set(token, value)
                if index % 10_000 == 9_999:
                    pipe.execute()
            pipe.execute()
            def redis_get(redis_sample: list[str]) -> int:
                get = client.get
                for token in redis_sample:
                    raw = get(token)
                    if raw is None:
                        continue
                    last, idle, absolute = map(int, raw.split(b","))
                    if int(clock()) >= min(last + idle, absolute):
                        continue
                return len(redis_sample)

            rows.append(
                (
                    "Redis GET + same checks, localhost (baseline)",
                    median_rate(redis_get, sample[:REDIS_SAMPLE], repeat),
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=200_000, help="validations per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    results: dict[int, dict[str, float]] = {}
    names: list[str] = []
    for size in args.sizes:
        print(f"table of {size:,} sessions:", flush=True)
        rows = bench_size(size, args.sample, args.repeat)
        results[size] = dict(rows)
        names += [name for name, _ in rows if name not in names]
    width = max(len(name) for name in names)
    labels = [f"{size:,} sessions" for size in args.sizes]
    cell = max(24, *(len(label) for label in labels))
    print()
    print(f"| {'validations per second, one Python thread':<{width}} |" + "".join(
        f" {label:>{cell}} |" for label in labels
    ))
    print("|" + "-" * (width + 2) + "|" + "".join("-" * (cell + 1) + ":|" for _ in args.sizes))
    for name in names:
        cells = ""
        for size in args.sizes:
            rate = results[size].get(name)
            baseline = results[size].get(DICT)
            text = "n/a"
            if rate:
                text = f"{rate / 1e6:.2f} M/s" if rate >= 1e5 else f"{rate / 1e3:.0f} k/s"
                if baseline:
                    text += f" ({rate / baseline:.2f}x dict)"
            cells += f" {text:>{cell}} |"
        print(f"| {name:<{width}} |{cells}")
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
