"""Run one parser target (tests/fuzz/targets.py) coverage-guided under atheris, for a bounded
time: ``python -m tests.fuzz.atheris_run TARGET SECONDS``. ``make fuzz`` runs every target this
way, one process each (libFuzzer stops its process at the first failure).

The corpus grows in ``.fuzz/corpus/TARGET`` (gitignored, kept between runs, started from the
target's seeds); a failing input is written to ``.fuzz/crashes/TARGET-*``. Joey's modules and
python-multipart are instrumented, so the inputs that reach new branches there are kept.

Without atheris (it ships wheels for CPython 3.11 on Linux x86-64; elsewhere it needs clang
with libFuzzer), the target runs for the same time over Hypothesis-drawn bytes through
``fuzz_one_input``: random, not coverage-guided, and it says so.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.fuzz.profiles import FUZZ_DIR


def main(name: str, seconds: int) -> int:
    corpus = FUZZ_DIR / "corpus" / name
    crashes = FUZZ_DIR / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    try:
        import atheris
    except ImportError:
        return without_atheris(name, seconds, crashes)
    with atheris.instrument_imports(include=["joey", "multipart", "python_multipart"]):
        from tests.fuzz.targets import SEEDS, TARGETS
    for index, seed in enumerate(SEEDS[name]):
        (corpus / f"seed-{index}").write_bytes(seed)
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}",
                   f"-artifact_prefix={crashes}/{name}-", "-print_final_stats=1",
                   "-rss_limit_mb=4096", "-timeout=30"], TARGETS[name])
    atheris.Fuzz()
    return 0


def without_atheris(name: str, seconds: int, crashes: Path) -> int:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.fuzz.targets import TARGETS

    print(f"atheris is not installed: {name} runs {seconds} s on random bytes from "
          "Hypothesis (not coverage-guided)", flush=True)
    target = TARGETS[name]

    @given(st.binary(max_size=4096))
    @settings(database=None)
    def run(data: bytes) -> None:
        target(data)

    deadline = time.monotonic() + seconds
    executions = 0
    while time.monotonic() < deadline:
        data = os.urandom(int.from_bytes(os.urandom(2), "big") % 8192 + 1)
        try:
            run.hypothesis.fuzz_one_input(data)
        except Exception:
            (crashes / f"{name}-{executions}").write_bytes(data)
            raise
        executions += 1
    print(f"{name}: {executions} executions, no failure", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
