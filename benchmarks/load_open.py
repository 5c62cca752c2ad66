"""Open-loop load test for ``flipkd serve``: p50/p99 against offered load, batching vs not.

Closed-loop clients (``load_test.py``) wait for each answer, so by Little's law their
latency grows with their number whatever the server does. Here requests arrive as a
Poisson process at a fixed offered rate and are sent at their scheduled time whether or
not earlier ones have returned; a request's latency runs from its *scheduled* time, so
time spent waiting in the load generator counts too (no coordinated omission).

The same run starts the server twice, with micro-batching (``--max-batch``, default 32)
and with ``--max-batch 1``. On each it first measures the single-request p50 (serial
requests with a pause between them), then sweeps ``--rates`` upwards, stopping after
``--past-bound`` rates whose p99 is above the bound, and bisects ``--refine`` times
between the highest rate within the bound and the lowest above it. The bound is
``--bound`` (2) × the lower of the two single-request p50s, the same for both servers.
A rate is within the bound when its p99 (of valid requests) is ≤ the bound and no
request failed (5xx, transport error, valid request not 200, broken one not 4xx).
The result is, per server, the highest rate within the bound below the first rate
above it, and the ratio of the two. Server start, request mix and provenance are
``load_test.py``'s.

Writes ``OUT.json`` and ``OUT.md``. Example::

    python benchmarks/load_open.py runs/demo/export --faq data/faq.csv \\
        --rates 2 4 6 8 12 16 --out results/serve/open_loop
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import (  # noqa: E402
    Request,
    _delta,
    load_average,
    make_request,
    provenance_markdown,
    result_header,
    run_info,
    running_server,
    scrape_batches,
    server_parser,
    status_summary,
    write_report,
)
from open_loop_stats import (  # noqa: E402
    FAILURES,
    GOAL,
    arrivals_for,
    next_probe,
    percentiles,
    poisson_arrivals,
    rate_at_bound,
    ratio,
    within_bound,
)

from flipkd.errors import run_script  # noqa: E402
from flipkd.serve.faq import load_faq  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = server_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 2, 3, 4, 6, 8, 12, 16, 24],
                        help="offered rates to sweep, requests/s (sorted)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals per rate")
    parser.add_argument("--min-requests", type=int, default=200,
                        help="at least this many arrivals per rate")  # fmt: skip
    parser.add_argument("--single-requests", type=int, default=50,
                        help="serial requests for the single-request p50")  # fmt: skip
    # A lone request must find the server as idle as sparse arrivals do: with 50 ms pauses
    # the OpenMP threads were still spinning and the p50 was 88 ms, where requests at 0.5/s
    # had a p50 of 125 ms (results/serve/README.md), so the bound was below the zero-load one.
    parser.add_argument("--single-gap-ms", type=float, default=1000.0,
                        help="pause between serial requests (server goes idle)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=10, help="serial requests before measuring")
    parser.add_argument("--bound", type=float, default=2.0, help="p99 bound ÷ single-request p50")
    parser.add_argument("--past-bound", type=int, default=1,
                        help="stop a sweep after this many rates above the bound")  # fmt: skip
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the sweep")
    parser.add_argument("--late-ms", type=float, default=10.0,
                        help="a send this late after its scheduled time is late")  # fmt: skip
    parser.add_argument("--connections", type=int, default=1024, help="client connection pool")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, s")
    parser.add_argument("--malformed", type=float, default=0.0, help="share of broken requests")
    parser.add_argument("--max-batch", type=int, default=32, help="the batching server's")
    args = parser.parse_args(argv)
    if sorted(args.rates) != args.rates or min(args.rates) <= 0:
        parser.error("--rates must be positive and ascending")
    return args


# ---- measuring ----------------------------------------------------------------------------


async def _send(http: httpx.AsyncClient, request: Request, scheduled: float, records: list):
    label, path, body, valid = request
    late = time.perf_counter() - scheduled
    try:
        status = (await http.post(path, content=body)).status_code
    except httpx.TransportError as err:
        status = f"error: {type(err).__name__}"
    done = time.perf_counter()
    records.append(
        {"kind": label, "valid": valid, "status": status, "s": done - scheduled,
         "late_s": late, "done": done}
    )  # fmt: skip


async def open_loop(url: str, token: str, requests: list[Request], arrivals: list[float], args):
    """Send each request at its arrival time, never waiting for earlier ones."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    n = args.connections
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    records: list[dict] = []
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=args.timeout
    ) as http:
        tasks = []
        start = time.perf_counter() + 0.05
        for request, offset in zip(requests, arrivals, strict=True):
            scheduled = start + offset
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(http, request, scheduled, records)))
        await asyncio.gather(*tasks)
    return records, start


def summarise_rate(rate: float, records: list[dict], start: float, late_ms: float) -> dict:
    """Offered rate, achieved rate (requests answered as they should be, per second from the
    first scheduled send to the last answer), latency percentiles of valid requests,
    failures, and sends later than ``late_ms`` after their scheduled time."""
    valid_ms = [r["s"] * 1000 for r in records if r["valid"]]
    end = max((r["done"] for r in records), default=start)
    late = [r["late_s"] * 1000 for r in records]
    answered = sum(
        1
        for r in records
        if (r["status"] == 200 if r["valid"] else str(r["status"]).startswith("4"))
    )
    return {
        "rate": rate,
        "requests": len(records),
        "achieved": round(answered / (end - start), 2) if end > start else 0.0,
        **percentiles(valid_ms),
        **status_summary(records),
        "late": sum(1 for x in late if x > late_ms),
        "max_late_ms": round(max(late, default=0.0), 2),
    }


def serial_p50(url: str, token: str, requests: list[Request], gap_s: float) -> dict:
    """Latency of requests sent one at a time, with a pause between them."""
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ms, statuses = [], []
    with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
        for _label, path, body, valid in requests:
            t0 = time.perf_counter()
            status = http.post(path, content=body).status_code
            if valid:
                ms.append((time.perf_counter() - t0) * 1000)
            statuses.append(status)
            time.sleep(gap_s)
    return {
        "requests": len(requests),
        **percentiles(ms),
        "non_200": sum(s != 200 for s in statuses),
    }


class Server:
    """One server configuration: its single-request latency and the rates measured on it."""

    def __init__(self, name: str, args: argparse.Namespace, questions: list[str]) -> None:
        self.name = name
        self.args = args
        self.questions = questions
        self.rows: list[dict] = []

    def requests(self, n: int, key: str, valid_only: bool = False) -> list[Request]:
        """``n`` requests of the mix; the same for both servers (seeded by ``key``)."""
        rng = random.Random(f"{self.args.seed}-requests-{key}")
        args = argparse.Namespace(**{**vars(self.args), "malformed": 0.0}) if valid_only else None
        return [make_request(rng, self.questions, args or self.args) for _ in range(n)]

    def measure(self, url: str, token: str, rate: float, phase: str, bound_ms: float) -> dict:
        a = self.args
        n = arrivals_for(rate, a.duration, a.min_requests)
        arrivals = poisson_arrivals(rate, n, random.Random(f"{a.seed}-arrivals-{rate}"))
        requests = self.requests(n, f"rate-{rate}")
        before = scrape_batches(url, token)
        records, start = asyncio.run(open_loop(url, token, requests, arrivals, a))
        after = scrape_batches(url, token)
        row = summarise_rate(rate, records, start, a.late_ms)
        row["mean_batch"] = {k: round(s / c, 2) for k, (s, c) in _delta(after, before).items() if c}
        row["phase"] = phase
        row["ok"] = within_bound(row, bound_ms)
        self.rows.append(row)
        print(
            f"[{self.name}] rate={rate:7.2f} achieved={row['achieved']:7.2f} "
            f"p50={row['p50_ms']:8.1f}ms p99={row['p99_ms']:8.1f}ms late={row['late']} "
            f"{'ok' if row['ok'] else 'over'}",
            flush=True,
        )
        return row


def measure_single(server: Server, url: str, token: str) -> dict:
    """Warm up, then the serial single-request latency."""
    a = server.args
    serial_p50(url, token, server.requests(a.warmup, "warmup", valid_only=True), 0.0)
    reqs = server.requests(a.single_requests, "single", valid_only=True)
    single = serial_p50(url, token, reqs, a.single_gap_ms / 1000)
    print(f"[{server.name}] single-request p50={single['p50_ms']:.1f}ms", flush=True)
    return single


def sweep(server: Server, url: str, token: str, bound_ms: float) -> None:
    """Rates upwards until ``--past-bound`` are over the bound, then bisection."""
    over = 0
    for rate in server.args.rates:
        if not server.measure(url, token, rate, "sweep", bound_ms)["ok"]:
            over += 1
            if over >= server.args.past_bound:
                break
    for _ in range(server.args.refine):
        rate = next_probe(server.rows)
        if rate is None:
            break
        server.measure(url, token, rate, "refine", bound_ms)


def run_servers(args: argparse.Namespace, questions: list[str]) -> dict[str, Any]:
    """``--max-batch 1`` first (its single-request p50 sets the bound), then batching."""
    configs = {
        "max-batch-1": argparse.Namespace(**{**vars(args), "max_batch": 1}),
        "batched": args,
    }
    token = secrets.token_urlsafe(16)
    single: dict[str, dict] = {}
    out: dict[str, dict] = {}
    bound_ms = base_ms = None
    for name, cfg in configs.items():
        server = Server(name, cfg, questions)
        load_before = load_average()
        with running_server(cfg, token) as url:
            single[name] = measure_single(server, url, token)
            if bound_ms is None:
                # without batching a lone request does not wait for company: that is
                # the single-request latency both servers are held to
                base_ms = single[name]["p50_ms"]
                bound_ms = round(args.bound * base_ms, 2)
                print(
                    f"bound: p99 <= {bound_ms:.1f} ms ({args.bound} x {base_ms:.1f} ms)", flush=True
                )
            sweep(server, url, token, bound_ms)
        out[name] = {
            "max_batch": cfg.max_batch,
            "rows": sorted(server.rows, key=lambda r: r["rate"]),
            "rate_at_bound": rate_at_bound(server.rows),
            "load_average": [load_before, load_average()],
        }
    return {
        "single": single,
        "single_p50_ms": base_ms,
        "bound_ms": bound_ms,
        "servers": out,
        "ratio": ratio(out["batched"]["rate_at_bound"], out["max-batch-1"]["rate_at_bound"], GOAL),
    }


def server_errors(measured: dict) -> int:
    """5xx other than 503 (queue full, expected under overload) and failed serial requests."""
    n = sum(s["non_200"] for s in measured["single"].values())
    for srv in measured["servers"].values():
        for row in srv["rows"]:
            n += sum(
                c for code, c in row["status"].items() if code.startswith("5") and code != "503"
            )
    return n


# ---- report -------------------------------------------------------------------------------


def _rate_text(found: dict) -> str:
    if found["rate"] is None:
        return f"none (already over at {found['first_failing']} req/s)"
    if found["censored"]:
        return f"≥ {found['rate']} req/s (no measured rate was over the bound)"
    return f"{found['rate']} req/s (over at {found['first_failing']} req/s)"


def markdown(result: dict) -> str:
    """The results as a markdown report."""
    lines = [
        "# flipkd serve open-loop load test",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Model `{result['model_dir']}` (loader `{result['loader']}`), FAQ `{result['faq']}` "
        f"({result['faq_entries']} entries); {result['match_share']:.0%} `/match`, "
        f"{result['malformed']:.0%} malformed; Poisson arrivals, each rate for "
        f"{result['duration']} s or at least {result['min_requests']} requests; latency from "
        f"the scheduled send time; max wait {result['max_wait_ms']} ms; "
        + provenance_markdown(result),
        "",
        f"Single-request p50 (serial, {result['single_requests']} requests): "
        + ", ".join(
            f"{k} {v['p50_ms']} ms (its p99 {v['p99_ms']} ms)" for k, v in result["single"].items()
        )
        + f". Bound: p99 ≤ {result['bound']} × {result['single_p50_ms']} ms = "
        f"**{result['bound_ms']} ms**, and no failed request.",
        "",
    ]
    for name, srv in result["servers"].items():
        lines += [
            f"## {name} (`--max-batch {srv['max_batch']}`)",
            "",
            f"Load average {srv['load_average'][0]} before, {srv['load_average'][1]} after. "
            f"Highest rate within the bound: **{_rate_text(srv['rate_at_bound'])}**.",
            "",
            "| offered req/s | requests | achieved req/s | p50 ms | p90 ms | p99 ms | late "
            "| failed | mean batch | phase | ok? |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
        ]
        for r in srv["rows"]:
            failed = sum(r[f] for f in FAILURES)
            batches = ", ".join(f"{k} {v}" for k, v in r["mean_batch"].items())
            lines.append(
                f"| {r['rate']} | {r['requests']} | {r['achieved']} | {r['p50_ms']} | "
                f"{r['p90_ms']} | {r['p99_ms']} | {r['late']} | {failed} | {batches} | "
                f"{r['phase']} | {'yes' if r['ok'] else 'no'} |"
            )
        lines.append("")
    r = result["ratio"]
    if r["value"] is None:
        verdict = "not measurable (a server had no rate within the bound)"
    else:
        prefix = {"exact": "", "lower": "≥ ", "upper": "≤ ", "unknown": "undetermined, "}
        met = {True: "met", False: "not met", None: "not shown"}[r["goal_met"]]
        verdict = f"{prefix[r['kind']]}{r['value']}× (goal ≥ {r['goal']}×: {met})"
    lines += [
        f"Rate at the bound, batched ÷ `--max-batch 1`: **{verdict}**.",
        "",
        f"Server errors (5xx other than 503, failed serial requests): {result['server_errors']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run both servers; exit 1 on a server error (a 5xx other than 503 queue-full)."""
    args = parse_args(argv)
    questions = [e.question for e in load_faq(args.faq)]
    info = run_info("benchmarks/load_open.py", argv)
    measured = run_servers(args, questions)
    result = {
        **result_header(
            args, questions, info, match_share=args.match_share, malformed=args.malformed,
            rerank=args.rerank, duration=args.duration, min_requests=args.min_requests,
            single_requests=args.single_requests, max_wait_ms=args.max_wait_ms, bound=args.bound,
        ),
        "load_average_end": load_average(),
        **measured,
        "server_errors": server_errors(measured),
    }  # fmt: skip
    write_report(args.out, result, markdown(result))
    print(markdown(result).rsplit("\n\n", 2)[-2])
    return 1 if result["server_errors"] else 0


if __name__ == "__main__":
    run_script(main)
