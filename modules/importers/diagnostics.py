"""The live-progress check: a job that only reports progress, so a person can see that events
reach their browser (through a proxy, say) and benchmarks can time publish-to-receive."""
from __future__ import annotations

import time

STEPS = (("prepare", "Prepare", 0.1), ("updates", "Send updates", 1.0), ("finish", "Finish", 0.1))
MAX_DURATION = 600
MAX_RATE = 1000


def run_progress_check(ctx):
    duration = min(max(float(ctx.params.get("duration", 5)), 0.1), MAX_DURATION)
    rate = min(max(float(ctx.params.get("rate", 20)), 1.0), MAX_RATE)
    tracker = ctx.tracker
    tracker.start_step("prepare", f"{rate:g} updates a second for {duration:g} s")
    tracker.complete_step("prepare")
    tracker.start_step("updates")
    total = int(duration * rate)
    tracker.set_total(total)
    start = time.monotonic()
    for i in range(1, total + 1):
        tracker.advance(1, updates=1)
        ctx.check()
        # Keep to the asked rate without drifting: sleep until this update's slot.
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    tracker.complete_step("updates")
    tracker.start_step("finish")
    return {"updates": total, "duration_seconds": round(time.monotonic() - start, 3),
            "message": f"Sent {total} updates in {time.monotonic() - start:.1f} s"}
