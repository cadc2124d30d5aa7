"""ProgressTracker hot-path benchmark.

1. advance() from 4 threads against a bare lock-protected counter (`with lock: n += 1`), measured
   the same way in the same run (target: advance at most 3x the bare counter), with the tracker
   started on a real MemoryStore so its flusher runs, as in real use.
2. Publish rate under a hot loop of 1,000,000 advance() calls (target: at most ~10 per second),
   and whether the final state was published. One million calls take well under a second here,
   so the same loop is also run for SUSTAINED_SECONDS to measure the rate over many flusher ticks.

Run: .venv/bin/python bench/bench_tracker.py   (writes bench/results/tracker.json)
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import results as bench_results  # noqa: E402 - bench/results.py
from flask_jobprogress import MemoryStore, ProgressTracker  # noqa: E402

THREADS = 4
CALLS_PER_THREAD = 250_000
ROUNDS = 5  # each variant is measured this many times, interleaved; the median is reported
HOT_LOOP_CALLS = 1_000_000
SUSTAINED_SECONDS = 3.0
MIN_INTERVAL = 0.1
RATIO_TARGET = 3.0
PUBLISH_RATE_TARGET = 10.0


def timed_threads(work, threads=THREADS):
    """Wall time for `threads` threads each running `work()`, started together."""
    barrier = threading.Barrier(threads + 1)

    def run():
        barrier.wait()
        work()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def bench_advance():
    lock = threading.Lock()
    box = {"n": 0}

    def bare_counter():
        for _ in range(CALLS_PER_THREAD):
            with lock:
                box["n"] += 1

    store = MemoryStore()
    tracker = ProgressTracker("bench-advance", "bench", [("work", "Work")], publish=store.publish,
                              min_interval=MIN_INTERVAL)
    tracker.start()
    tracker.start_step("work")
    tracker.set_total(THREADS * CALLS_PER_THREAD * ROUNDS * 2)

    def advance_plain():
        advance = tracker.advance
        for _ in range(CALLS_PER_THREAD):
            advance()

    def advance_counter():
        advance = tracker.advance
        for _ in range(CALLS_PER_THREAD):
            advance(1, imported=1)

    variants = {"bare_lock_counter": bare_counter, "advance()": advance_plain,
                "advance(1, imported=1)": advance_counter}
    times = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, work in variants.items():
            times[name].append(timed_threads(work))

    calls = THREADS * CALLS_PER_THREAD
    expected = calls * ROUNDS
    assert box["n"] == expected, (box["n"], expected)
    tracker.complete()
    final = store.get("bench-advance")
    assert final["done"] == 2 * expected and final["counters"]["imported"] == expected, final
    ns = {name: statistics.median(t) / calls * 1e9 for name, t in times.items()}
    bare = ns["bare_lock_counter"]
    return {
        "threads": THREADS, "calls_per_thread": CALLS_PER_THREAD, "rounds": ROUNDS,
        "ns_per_call": {name: round(v, 1) for name, v in ns.items()},
        "ns_per_call_all_rounds": {name: [round(x / calls * 1e9, 1) for x in t] for name, t in times.items()},
        "ratio_to_bare": {name: round(v / bare, 2) for name, v in ns.items() if name != "bare_lock_counter"},
        "counts_exact": True,
    }


def hot_loop(calls=None, seconds=None):
    """Publishes seen while one thread calls advance() `calls` times (or for `seconds`)."""
    store = MemoryStore()
    published = []

    def publish(snapshot):
        published.append(snapshot["version"])
        store.publish(snapshot)

    tracker = ProgressTracker("bench-publish", "bench", [("work", "Work")], publish=publish,
                              min_interval=MIN_INTERVAL)
    tracker.start()
    tracker.start_step("work")
    before = len(published)
    advance = tracker.advance
    n = 0
    started = time.perf_counter()
    if calls is not None:
        for _ in range(calls):
            advance()
        n = calls
    else:
        while time.perf_counter() - started < seconds:
            for _ in range(10_000):
                advance()
            n += 10_000
    loop_seconds = time.perf_counter() - started
    during = len(published) - before
    tracker.complete(redirect_url="/bench")
    final = store.get("bench-publish")
    return {
        "calls": n, "min_interval": MIN_INTERVAL,
        "loop_seconds": round(loop_seconds, 3),
        "ns_per_call": round(loop_seconds / n * 1e9, 1),
        "publishes_during_loop": during,
        "publishes_per_second": round(during / loop_seconds, 2),
        "publishes_total": len(published),  # with the start and the final publish
        "versions_increasing": all(b > a for a, b in zip(published, published[1:], strict=False)),
        "final_state_published": (final == tracker.snapshot() and final["status"] == "completed"
                                  and final["done"] == n and published[-1] == tracker.version),
        "final_done": final["done"], "final_status": final["status"],
    }


def bench_publish_rate():
    return {"million_calls": hot_loop(calls=HOT_LOOP_CALLS), "sustained": hot_loop(seconds=SUSTAINED_SECONDS)}


def result_tables(results):
    """The table docs/performance.md shows for this run."""
    ns, ratio = results["advance"]["ns_per_call"], results["advance"]["ratio_to_bare"]
    million, sustained = results["publish"]["million_calls"], results["publish"]["sustained"]
    rows = [[f"`advance()` from {THREADS} threads, vs a bare lock-protected counter",
             f"{ratio['advance()']:.2f}x ({ns['advance()']:.0f} ns vs {ns['bare_lock_counter']:.0f} ns a call)",
             f"at most {RATIO_TARGET:g}x"],
            [f"`advance(1, imported=1)` from {THREADS} threads, vs the same", f"{ratio['advance(1, imported=1)']:.2f}x",
             f"at most {RATIO_TARGET:g}x"],
            [f"publishes a second under a hot loop ({sustained['calls'] / 1e6:.1f} M `advance()` in "
             f"{SUSTAINED_SECONDS:g} s)", f"{sustained['publishes_per_second']:.1f}", f"about {PUBLISH_RATE_TARGET:g} at most"],
            [f"{million['calls']:,} `advance()` calls: final state published",
             f"{'yes' if million['final_state_published'] else 'NO'} ({million['loop_seconds']:.1f} s loop, "
             f"{million['publishes_total']} publishes)", "always"]]
    return [bench_results.table(["measure", "figure", "target"], rows)]


def main():
    advance = bench_advance()
    publish = bench_publish_rate()
    worst_ratio = max(advance["ratio_to_bare"].values())
    loops = publish.values()
    results = {
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "switch_interval": sys.getswitchinterval(),
        "advance": advance, "publish": publish,
        "targets": {
            "advance_ratio_max": RATIO_TARGET, "advance_ratio_ok": worst_ratio <= RATIO_TARGET,
            "publishes_per_second_max": PUBLISH_RATE_TARGET,
            "publish_rate_ok": all(p["publishes_per_second"] <= PUBLISH_RATE_TARGET * 1.1 for p in loops),
            "final_state_published": all(p["final_state_published"] for p in loops),
        },
    }

    print(f"advance from {THREADS} threads x {CALLS_PER_THREAD:,} calls (median of {ROUNDS} rounds)")
    print(f"  {'variant':<26}{'ns/call':>10}{'x bare':>9}")
    for name, ns in advance["ns_per_call"].items():
        ratio = advance["ratio_to_bare"].get(name, 1.0)
        print(f"  {name:<26}{ns:>10.1f}{ratio:>9.2f}")
    print(f"  target: at most {RATIO_TARGET}x -> {'ok' if results['targets']['advance_ratio_ok'] else 'MISSED'}")
    million, sustained = publish["million_calls"], publish["sustained"]
    print(f"hot loop of advance() from one thread, min_interval={MIN_INTERVAL}s")
    print(f"  {'':<26}{'1M calls':>12}{f'{SUSTAINED_SECONDS:g} s loop':>12}")
    rows = [("calls", "calls", "{:,}"), ("loop seconds", "loop_seconds", "{:.3f}"),
            ("ns/call", "ns_per_call", "{:.1f}"), ("publishes during loop", "publishes_during_loop", "{}"),
            ("publishes per second", "publishes_per_second", "{:.2f}"),
            ("publishes in total", "publishes_total", "{}"),
            ("versions increasing", "versions_increasing", "{}"),
            ("final state published", "final_state_published", "{}")]
    for label, key, fmt in rows:
        print(f"  {label:<26}{fmt.format(million[key]):>12}{fmt.format(sustained[key]):>12}")
    print(f"  target: at most ~{PUBLISH_RATE_TARGET:g}/s -> {'ok' if results['targets']['publish_rate_ok'] else 'MISSED'}")
    bench_results.write_results("tracker", results, result_tables(results))
    ok = all(v for k, v in results["targets"].items() if k.endswith("_ok") or k == "final_state_published")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
