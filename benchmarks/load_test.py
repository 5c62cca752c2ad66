"""Load test for ``flipkd serve`` on loopback: QPS and p50/p99 latency per concurrency level.

Starts ``python -m flipkd serve MODEL_DIR --faq FAQ`` on a free 127.0.0.1 port (with a
random bearer token), then for each concurrency level sends a bounded number of
requests (and stops a level after ``--max-seconds``): FAQ searches and pair
matches built from the FAQ's own questions, with ``--malformed`` of them broken
on purpose (bad JSON, not UTF-8, empty, wrong types, over the limits). Valid
requests must get 200 and broken ones a 4xx; any 5xx fails the run (exit 1).
The server is stopped with SIGINT, so its graceful shutdown is exercised too.
The clients are closed-loop (each waits for its answer), so latency grows with their
number whatever the server does (Little's law); ``load_open.py`` measures latency against
an offered rate instead, and shares this file's server start, requests and provenance.

Writes ``OUT.json`` and ``OUT.md``. Example::

    python benchmarks/load_test.py runs/demo/export --faq data/faq.csv --out results/serve_load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from flipkd.errors import run_script
from flipkd.provenance import git_commit, versions
from flipkd.serve.faq import load_faq

Request = tuple[str, str, bytes, bool]  # (label, path, body, valid)


def server_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every load test shares: what to serve, with which settings, where to write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("model_dir", type=Path, help="exported model directory")
    parser.add_argument("--faq", type=Path, required=True, help="FAQ CSV/JSONL")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--loader", default="flipkd", help="'flipkd' or 'module:function'")
    parser.add_argument("--rerank", type=float, default=0.0, help="share of searches re-ranked")
    parser.add_argument("--match-share", type=float, default=0.3, help="share of /match")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--queue", type=int, default=256)
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = server_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--requests", type=int, default=200, help="requests per level (max)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time limit per level")
    parser.add_argument("--malformed", type=float, default=0.1, help="share of broken requests")
    parser.add_argument("--max-batch", type=int, default=32)
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(args: argparse.Namespace, token: str):
    """Start ``flipkd serve`` in a child process; yield its URL; stop it with SIGINT."""
    port = _free_port()
    command = [sys.executable, "-m", "flipkd", "serve", str(args.model_dir), "--faq",
               str(args.faq), "--port", str(port), "--loader", args.loader,
               "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
               "--queue", str(args.queue)]  # fmt: skip
    env = {**os.environ, "FLIPKD_SERVE_TOKEN": token, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, url, args.startup_timeout, log)
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace")[-2000:]
            raise SystemExit(f"server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout}s")


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


MALFORMED: dict[str, Callable[[str], bytes]] = {
    "bad-json": lambda q: b'{"query": "' + q.encode() + b'",',
    "not-utf8": lambda q: b'{"query": "caf\xe9"}',
    "empty": lambda q: b"",
    "wrong-type": lambda q: _json({"query": q, "k": "five"}),
    "k-too-large": lambda q: _json({"query": q, "k": 10_000}),
    "text-too-long": lambda q: _json({"query": q * 2000}),
    "oversized": lambda q: b" " * (100 * 1024),
}


def make_request(rng: random.Random, questions: list[str], args: argparse.Namespace) -> Request:
    """One request: broken with probability ``--malformed``, else a search or a match."""
    question = rng.choice(questions)
    if rng.random() < args.malformed:
        kind = rng.choice(sorted(MALFORMED))
        return kind, "/search", MALFORMED[kind](question), False
    if rng.random() < args.match_share:
        pairs = [[rng.choice(questions), rng.choice(questions)] for _ in range(rng.randint(1, 4))]
        body = {"pairs": pairs, "mode": rng.choice(["gen", "rep"])}
        return "match", "/match", _json(body), True
    words = question.split()
    query = " ".join(w for w in words if rng.random() > 0.25) or question
    body = {"query": query, "k": 5, "rerank": rng.random() < args.rerank}
    return "search", "/search", _json(body), True


async def run_level(url: str, token: str, clients: int, requests: list[Request], max_s: float):
    """Send ``requests`` with ``clients`` concurrent workers; return records and seconds."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    todo = iter(requests)
    records: list[dict] = []
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:

        async def worker() -> None:
            for label, path, body, valid in todo:
                if time.perf_counter() - start > max_s:
                    return
                t0 = time.perf_counter()
                try:
                    status = (await http.post(path, content=body)).status_code
                except httpx.TransportError as err:
                    status = f"error: {type(err).__name__}"
                latency = time.perf_counter() - t0
                records.append({"kind": label, "valid": valid, "status": status, "s": latency})

        await asyncio.gather(*(worker() for _ in range(clients)))
    return records, time.perf_counter() - start


BATCH_LINE = re.compile(r'^flipkd_batch_size_(sum|count)\{kind="(\w+)"\} (\S+)$', re.M)


def batch_totals(metrics_text: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of ``flipkd_batch_size`` per kind, from a /metrics scrape."""
    totals: dict[str, list[float]] = {}
    for field, kind, value in BATCH_LINE.findall(metrics_text):
        totals.setdefault(kind, [0.0, 0.0])[field == "count"] = float(value)
    return {kind: (s, c) for kind, (s, c) in totals.items()}


def summarise(records: list[dict], seconds: float, clients: int, batches: dict) -> dict:
    """QPS, latency percentiles and status counts for one level."""
    ms = np.array([r["s"] for r in records]) * 1000 if records else np.zeros(1)
    valid_ms = np.array([r["s"] * 1000 for r in records if r["valid"]] or [0.0])
    return {
        "clients": clients,
        "requests": len(records),
        "seconds": round(seconds, 3),
        "qps": round(len(records) / seconds, 2) if seconds else 0.0,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "valid_p50_ms": round(float(np.percentile(valid_ms, 50)), 2),
        "valid_p99_ms": round(float(np.percentile(valid_ms, 99)), 2),
        **status_summary(records),
        "mean_batch": {k: round(s / c, 2) for k, (s, c) in batches.items() if c},
    }


def status_summary(records: list[dict]) -> dict:
    """Status counts and the failures among them: 5xx, transport errors, wrong answers."""
    statuses = Counter(str(r["status"]) for r in records)
    return {
        "status": dict(sorted(statuses.items())),
        "http_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "transport_errors": sum(n for s, n in statuses.items() if s.startswith("error")),
        "valid_not_200": sum(1 for r in records if r["valid"] and r["status"] != 200),
        "malformed_not_4xx": sum(
            1 for r in records if not r["valid"] and not str(r["status"]).startswith("4")
        ),
    }


def scrape_batches(url: str, token: str) -> dict[str, tuple[float, float]]:
    """The server's batch-size totals now."""
    auth = {"Authorization": f"Bearer {token}"}
    return batch_totals(httpx.get(f"{url}/metrics", headers=auth).text)


def _delta(after: dict, before: dict) -> dict:
    zero = (0.0, 0.0)
    return {
        k: (s - before.get(k, zero)[0], c - before.get(k, zero)[1]) for k, (s, c) in after.items()
    }


def provenance_markdown(result: dict) -> str:
    """Machine, commit, date, load average and versions of a result from ``run_info``."""
    return (
        f"{result['machine']}; git commit `{result['git_commit']}`; {result['date']}; "
        f"load average (1/5/15 min) {result['load_average_start']} at start, "
        f"{result['load_average_end']} at end.\n\nVersions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + "."
    )


def markdown(result: dict) -> str:
    """The results as a markdown report."""
    lines = [
        "# flipkd serve load test",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Model `{result['model_dir']}` (loader `{result['loader']}`), FAQ `{result['faq']}` "
        f"({result['faq_entries']} entries); {result['malformed']:.0%} malformed requests; "
        f"max batch {result['max_batch']}, max wait {result['max_wait_ms']} ms; "
        + provenance_markdown(result),
        "",
        "| clients | requests | QPS | p50 ms | p99 ms | valid p50 | valid p99 | 5xx "
        "| statuses | mean batch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for lv in result["levels"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in lv["status"].items())
        batches = ", ".join(f"{k} {v}" for k, v in lv["mean_batch"].items())
        lines.append(
            f"| {lv['clients']} | {lv['requests']} | {lv['qps']} | {lv['p50_ms']} | "
            f"{lv['p99_ms']} | {lv['valid_p50_ms']} | {lv['valid_p99_ms']} | {lv['http_5xx']} | "
            f"{statuses} | {batches} |"
        )
    lines += ["", f"Result: **{'PASS' if result['ok'] else 'FAIL'}** (no 5xx, valid → 200, "
              "malformed → 4xx)."]  # fmt: skip
    if result.get("targets"):
        t = result["targets"]
        lines += ["", f"At {t['clients']} clients: throughput {t['throughput_vs_serial']}× "
                  f"serial (target ≥ 3), valid p99 {t['p99_vs_single_latency']}× the serial "
                  "valid p50 (issue 7 asked ≤ 2; withdrawn, see load_open.py)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def run_levels(args: argparse.Namespace, questions: list[str]) -> list[dict]:
    """Start the server and measure every concurrency level."""
    rng = random.Random(args.seed)
    token = secrets.token_urlsafe(16)
    auth = {"Authorization": f"Bearer {token}"}
    levels = []
    with running_server(args, token) as url:
        warmup = httpx.post(f"{url}/search", json={"query": questions[0], "k": 1}, headers=auth)
        warmup.raise_for_status()
        for clients in args.concurrency:
            requests = [make_request(rng, questions, args) for _ in range(args.requests)]
            before = scrape_batches(url, token)
            level = run_level(url, token, clients, requests, args.max_seconds)
            records, seconds = asyncio.run(level)
            after = scrape_batches(url, token)
            lv = summarise(records, seconds, clients, _delta(after, before))
            levels.append(lv)
            print(
                f"clients={clients:3d} qps={lv['qps']:8.1f} p50={lv['p50_ms']:7.1f}ms "
                f"p99={lv['p99_ms']:7.1f}ms 5xx={lv['http_5xx']}",
                flush=True,
            )
    return levels


def targets(levels: list[dict], clients: int = 16) -> dict[str, float] | None:
    """Issue 7's ratios: QPS at ``clients`` over serial, p99 there over the serial p50."""
    by = {lv["clients"]: lv for lv in levels}
    if 1 not in by or clients not in by:
        return None
    one, many = by[1], by[clients]
    return {
        "clients": clients,
        "throughput_vs_serial": round(many["qps"] / one["qps"], 2),
        "p99_vs_single_latency": round(many["valid_p99_ms"] / one["valid_p50_ms"], 2),
    }


def _passed(level: dict) -> bool:
    checks = ("http_5xx", "transport_errors", "valid_not_200", "malformed_not_4xx")
    return all(level[c] == 0 for c in checks)


def load_average() -> list[float]:
    """The 1/5/15-minute load average, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def run_info(script: str, argv: list[str] | None) -> dict[str, Any]:
    """Command, machine, git commit, versions, date and load average at the start of a run."""
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return {
        "command": shlex.join(["python", script, *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine,
        "git_commit": git_commit(),
        "versions": versions(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
    }


def result_header(args: argparse.Namespace, questions: list[str], info: dict, **extra) -> dict:
    """The fields every load report starts with: what ran, on what, and where."""
    return {
        "command": info["command"],
        "model_dir": str(args.model_dir),
        "loader": args.loader,
        "faq": str(args.faq),
        "faq_entries": len(questions),
        **extra,
        **{k: v for k, v in info.items() if k != "command"},
    }


def write_report(out: Path, result: dict, text: str) -> None:
    """``OUT.json`` (the result) and ``OUT.md`` (its rendering)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    Path(f"{out}.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the load test; exit 0 when every level passed."""
    args = parse_args(argv)
    questions = [e.question for e in load_faq(args.faq)]
    info = run_info("benchmarks/load_test.py", argv)
    levels = run_levels(args, questions)
    result = {
        **result_header(
            args, questions, info, malformed=args.malformed, max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
        ),
        "load_average_end": load_average(),
        "levels": levels,
        "targets": targets(levels),
        "ok": all(_passed(lv) for lv in levels),
    }  # fmt: skip
    write_report(args.out, result, markdown(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    run_script(main)
