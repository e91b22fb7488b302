"""``make fuzz``: the long run, within a time budget (``python -m tests.fuzz.run --minutes 30``).

Half the budget goes to the parser targets under atheris, shared equally, one process each
(tests/fuzz/atheris_run.py); the other half to the property tests (in process and over both
uvicorn parsers) with ``JOEY_FUZZ=long``, run again and again with fresh random seeds until the
time is up. Everything found is kept in ``.fuzz/`` (gitignored): the Hypothesis database, which
replays a failure first on every later run, the atheris corpora, and failing inputs. A summary
with the figures ends the run; it exits non-zero if anything failed. Turn each failure into a
regression: an ``@example`` in tests/fuzz/test_requests.py, a seed in tests/fuzz/targets.py.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from tests.fuzz.profiles import FUZZ_DIR, ROOT
from tests.fuzz.targets import TARGETS

PROPERTY_TESTS = ["tests/fuzz/test_requests.py", "tests/fuzz/test_servers.py"]
FIGURES = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")


def run_target(name: str, seconds: int) -> tuple[str, bool]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "tests.fuzz.atheris_run", name, str(seconds)],
                            cwd=ROOT, capture_output=True, text=True, check=False,
                            timeout=seconds + 600)
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    (FUZZ_DIR / "logs").mkdir(parents=True, exist_ok=True)
    (FUZZ_DIR / "logs" / f"{name}.log").write_text(output, encoding="utf-8")
    figures = FIGURES.search(output)
    if figures:
        runs, cov, ft, corpus = figures.groups()
        line = f"{name:22} {int(runs):>10,} runs  cov {cov:>4}  ft {ft:>5}  corpus {corpus:>4}"
    else:
        line = f"{name:22} {output.strip().splitlines()[-1] if output.strip() else ''}"
    failed = result.returncode != 0
    return f"{line}  {took:5.0f} s  {'FAILED (.fuzz/logs)' if failed else 'ok'}", failed


def run_properties(seconds: float) -> tuple[str, bool]:
    deadline = time.monotonic() + seconds
    rounds = examples = 0
    failed = False
    # Rounds of 5 times the examples of `make test` (a few minutes each): the budget is kept
    # to within about a round, and every round draws with a fresh seed.
    env = {"JOEY_FUZZ_FACTOR": "5", **os.environ, "JOEY_FUZZ": "long"}
    while (rounds == 0 or time.monotonic() < deadline) and not failed:  # one round at least
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0",
             "--hypothesis-show-statistics", *PROPERTY_TESTS],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        rounds += 1
        examples += sum(int(n) for n in re.findall(r"(\d+) passing", result.stdout))
        if result.returncode != 0:
            failed = True
            (FUZZ_DIR / "logs").mkdir(parents=True, exist_ok=True)
            (FUZZ_DIR / "logs" / "properties.log").write_text(result.stdout + result.stderr,
                                                              encoding="utf-8")
    verdict = "FAILED (.fuzz/logs/properties.log)" if failed else "ok"
    return f"property tests         {rounds} rounds, {examples:,} examples  {verdict}", failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    budget = args.minutes * 60
    per_target = max(int(budget / 2 / len(TARGETS)), 5)
    started = time.monotonic()
    lines, failures = [], 0
    for name in sorted(TARGETS):
        line, failed = run_target(name, per_target)
        print(line, flush=True)
        lines.append(line)
        failures += failed
    line, failed = run_properties(budget - (time.monotonic() - started))
    print(line, flush=True)
    lines.append(line)
    failures += failed
    print(f"\nmake fuzz: {len(lines)} runs in {(time.monotonic() - started) / 60:.1f} min, "
          f"{failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
