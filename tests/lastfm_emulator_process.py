"""The Last.fm emulator in a process of its own: its arrival times are then not held up by the app
under test, which shares one interpreter lock with whatever runs in its process (a same-process
emulator was seen stamping requests sent at 5 a second as 8 a second on a busy machine).

    python -m tests.lastfm_emulator_process N_LISTENS START_UTS SAME_SECOND_EVERY LATENCY

prints the emulator's URL, serves until a line arrives on its standard input, then prints one JSON
line: {"arrivals": [monotonic seconds, ...], "methods": [...], "max_in_flight": n}.
"""
from __future__ import annotations

import json
import sys

from tests.emulators.lastfm import LastfmEmulator, generate_listens


def main(listens, start_uts, every, latency):
    emulator = LastfmEmulator(latency=latency).start()
    emulator.add_listens("rj", generate_listens(listens, start_uts=start_uts, same_second_every=every))
    print(emulator.url, flush=True)
    sys.stdin.readline()
    requests = emulator.requests
    print(json.dumps({"arrivals": [r.time for r in requests], "methods": [r.method for r in requests],
                      "max_in_flight": emulator.max_in_flight}), flush=True)
    emulator.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
