"""`python -m bench [SECTION ...]`: run benchmark sections and print their figures."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

# One core for the figures: no hidden thread pools in numpy's libraries.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from bench import (  # noqa: E402
    broadcast,
    cluster,
    console,
    progress,
    qa,
    reminders,
    run,
    semantic,
    throughput,
)

SECTIONS = {
    "qa": qa.main,
    "semantic": semantic.main,
    "run": run.main,
    "throughput": throughput.main,
    "cluster": cluster.main,
    "progress": progress.main,
    "broadcast": broadcast.main,
    "reminders": reminders.main,
    "console": console.main,
}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--in-process"]:
        for name in argv[1:]:
            SECTIONS[name]()
        return 0
    chosen = argv or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
        return 2
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    failed = 0
    for name in chosen:
        print(f"\n== {name} ==", flush=True)
        # Each section in a fresh process: one section's heap does not slow the next.
        done = subprocess.run([sys.executable, "-m", "bench", "--in-process", name], check=False)
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
