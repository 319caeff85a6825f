"""Where a cancel's time goes, as a client sees it: runlane (one or more source trees)
and optionally the reference server, under identical client code.

    .venv/bin/python benchmarks/cancel_latency.py                      # this tree, 3 reps
    .venv/bin/python benchmarks/cancel_latency.py --ref                # + the reference
    .venv/bin/python benchmarks/cancel_latency.py --src base=/tmp/base --src new=.

Each repetition starts every server fresh (alternating them: rep 1 of each, then rep
2 ...), warms it up, then cancels `--n` `sleepy` runs one at a time, each on a fresh
thread, once it has ticked (as `make bench`'s `life` scenario does). The cancels
cycle through four kinds, so each kind sees the same server state:

- `sdk0`: `runs.cancel(wait=False)`: time to the answer, then `runs.get` back to back
  until the run is terminal (cancel -> terminal, from the cancel request);
- `sdk1`: `runs.cancel(wait=True)`: time to the answer, then one `runs.get` that must
  say `interrupted`;
- `raw0`, `raw1`: the same two requests through bare httpx (no SDK: no JSON decoding
  on a thread, no `request_reconnect` streaming), to tell client costs from server ones.

Right before each cancel, one `runs.get` of the running run is timed too (`get`): the
price of any request on that server at that moment, the floor a cancel cannot beat.

`--src NAME=DIR` runs runlane from DIR/src (PYTHONPATH; this tree's venv supplies the
dependencies), so two versions can be compared back to back on one machine, e.g. a
`git archive` of the base commit against the working tree. Prints the median over the
repetitions of each repetition's p50 and p99, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios as sc
from servers import DEFAULT_REF_VENV, Servers, ensure_ref_venv, reference_server, runlane_server

KINDS = ("sdk0", "sdk1", "raw0", "raw1")


async def one_cancel(t: sc.Target, thread_id: str, kind: str, delay: float, settle_s: float,
                     out: dict[str, list[float]], anomalies: list[str]) -> None:
    run = await sc.start_sleepy(t, thread_id, delay)
    rid = run["run_id"]
    status, _ = await sc.poll_until(t, thread_id, rid, lambda s: s != "pending")
    if status != "running":
        anomalies.append(f"run {status} instead of running")
        return
    await asyncio.sleep(settle_s)
    start = time.perf_counter()
    await t.client.runs.get(thread_id, rid)
    out["get"].append(time.perf_counter() - start)
    wait = kind.endswith("1")
    url = f"/threads/{thread_id}/runs/{rid}/cancel"
    start = time.perf_counter()
    if kind.startswith("sdk"):
        await t.client.runs.cancel(thread_id, rid, wait=wait)
    else:
        response = await t.http.post(url, params={"wait": int(wait), "action": "interrupt"})
        if response.status_code not in (200, 202):
            anomalies.append(f"{kind}: HTTP {response.status_code}")
    answered = time.perf_counter() - start
    out[f"{kind}_answer"].append(answered)
    if wait:
        status = (await t.client.runs.get(thread_id, rid))["status"]
        if status != "interrupted":
            anomalies.append(f"{kind} answered while the run was {status}")
    else:
        status, _ = await sc.poll_until(t, thread_id, rid, lambda s: s in sc.TERMINAL)
        out[f"{kind}_terminal"].append(time.perf_counter() - start)
        if status != "interrupted":
            anomalies.append(f"{kind}: ended {status}")


async def measure(t: sc.Target, n: int, max_seconds: float, delay: float,
                  settle_s: float) -> tuple[dict[str, list[float]], list[str]]:
    out: dict[str, list[float]] = {"get": []}
    for kind in KINDS:
        out[f"{kind}_answer"] = []
        if not kind.endswith("1"):
            out[f"{kind}_terminal"] = []
    anomalies: list[str] = []
    threads = await sc.new_threads(t, n + 8)
    warm: dict[str, list[float]] = {k: [] for k in out}
    for i, thread_id in enumerate(threads[:8]):  # warm-up: every kind twice, not kept
        await one_cancel(t, thread_id, KINDS[i % 4], delay, settle_s, warm, anomalies)
    deadline = time.perf_counter() + max_seconds
    for i, thread_id in enumerate(threads[8:]):
        if i >= 8 and time.perf_counter() > deadline:
            break
        await one_cancel(t, thread_id, KINDS[i % 4], delay, settle_s, out, anomalies)
    return out, anomalies


def summary(samples: dict[str, list[float]]) -> dict[str, tuple[float, float, int]]:
    return {key: (sc.percentile(v, 50) * 1000, sc.percentile(v, 99) * 1000, len(v))
            for key, v in samples.items()}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="cancels per repetition and server")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--src", action="append", default=[], metavar="NAME=DIR",
                   help="a runlane source tree to measure (repeatable); default: this tree")
    p.add_argument("--ref", action="store_true", help="also measure the reference server")
    p.add_argument("--ref-venv", type=Path, default=DEFAULT_REF_VENV)
    p.add_argument("--ref-seconds", type=float, default=120.0,
                   help="time cap per repetition for the reference (it starts a run ~1/s)")
    p.add_argument("--delay", type=float, default=0.05, help="sleepy's tick, seconds")
    p.add_argument("--settle", type=float, default=0.06, help="wait before cancelling")
    return p.parse_args()


async def main() -> None:
    args = parse_args()
    versions: list[tuple[str, str | None]] = []
    for spec in args.src:
        name, _, directory = spec.partition("=")
        versions.append((name, str(Path(directory).resolve() / "src")))
    if not versions:
        versions.append(("runlane", None))
    if args.ref:
        versions.append(("reference", "REF"))
    ref_exe = ensure_ref_venv(args.ref_venv) if args.ref else None
    results: dict[str, list[dict[str, tuple[float, float, int]]]] = {v: [] for v, _ in versions}
    with Servers() as servers:
        for rep in range(args.reps):
            for name, src in versions:
                workdir = servers.workdir(f"{name}-{rep}")
                if src == "REF":
                    server = reference_server(workdir, ref_exe, [])
                    cap = args.ref_seconds
                else:
                    server = runlane_server(workdir)
                    if src is not None:
                        server.env = {"PYTHONPATH": src}
                    cap = 1e9
                servers.start(server)
                t = sc.Target(server)
                try:
                    samples, anomalies = await measure(t, args.n, cap, args.delay, args.settle)
                finally:
                    await t.aclose()
                    server.stop()
                stats = summary(samples)
                results[name].append(stats)
                print(f"rep {rep + 1} {name}: " + ", ".join(
                    f"{k} {p50:.2f}/{p99:.2f}" for k, (p50, p99, _) in stats.items())
                    + (f"  anomalies: {anomalies[:5]} ({len(anomalies)})" if anomalies else ""),
                    flush=True)
    keys = list(next(iter(results.values()))[0])
    samples = ", ".join(f"{k}={results[versions[0][0]][0][k][2]}" for k in keys)
    print(f"\nmedian over {args.reps} reps of per-rep p50 / p99, ms "
          f"(samples per rep: {samples})")
    print(f"{'':16}" + "".join(f"{name:>22}" for name, _ in versions))
    for key in keys:
        row = f"{key:16}"
        for name, _ in versions:
            p50 = statistics.median(r[key][0] for r in results[name])
            p99 = statistics.median(r[key][1] for r in results[name])
            row += f"{p50:>12.2f} /{p99:>8.2f}"
        print(row)


if __name__ == "__main__":
    asyncio.run(main())
