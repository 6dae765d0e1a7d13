"""The waiting side of the cross-language wake benchmark (bench/src/bin/wake.rs
starts it): a Python listener on channel "bench". Prints "ready", then one line
per notification, "<seq> <woken_ns>" (CLOCK_MONOTONIC, the clock the Rust side
reads), and exits after seq -1.

Run by: make bench-wake-cross
"""

import sys
import time

import honker


def main() -> None:
    db = honker.open(sys.argv[1])
    listener = db.listen("bench")
    print("ready", flush=True)
    for n in listener:
        print(f"{n.payload} {time.monotonic_ns()}", flush=True)
        if n.payload < 0:
            return


if __name__ == "__main__":
    main()
