"""Pure vs compiled Joey, in-process, side by side (issue 19)::

    make test-compiled   # or: make compiled, and install dist/joey-*-cp*.whl into .venv-compiled
    .venv/bin/python benchmarks/compiled.py [--rounds 3 --scenarios plaintext,json]

Runs ``inprocess.py`` under two interpreters, the pure one (an editable install of src/, the
``joey`` column) and the compiled one (the wheel ``make compiled`` builds, the
``joey-compiled`` column), in alternating rounds on the same machine, so that drift in the
machine's load hits both alike. Prints the best time per scenario of each and the speed-up.
``make bench`` shows both columns beside the peers; this is the quicker A/B of the two builds
alone. No figure is asserted on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from scenarios import SCENARIOS  # noqa: E402

PROBE = "import joey._engine.tree as t; print(t.__file__)"


def _is_compiled(python: Path) -> bool:
    out = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True,
                         check=True, cwd=HERE).stdout.strip()
    return not out.endswith(".py")


# The app module's column names: "joey-compiled" must (and "joey" must not) import the wheel.
COLUMNS = {"pure": "joey", "compiled": "joey-compiled"}


def _round(python: Path, column: str, scenarios: str, out: Path, repeats: int
           ) -> dict[str, float]:
    subprocess.run(
        [str(python), str(HERE / "inprocess.py"), column, "--out", str(out),
         "--repeats", str(repeats), *(["--scenarios", scenarios] if scenarios else [])],
        check=True, cwd=HERE, timeout=900,
    )
    results = json.loads(out.read_text())["results"]
    return {key: r["best_ns"] for key, r in results.items() if r.get("status") == "ok"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pure", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument("--compiled", type=Path,
                        default=ROOT / ".venv-compiled" / "bin" / "python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scenarios", default="", help="comma-separated keys (default: all)")
    args = parser.parse_args(argv)
    builds = {"pure": args.pure, "compiled": args.compiled}
    for name, python in builds.items():
        if _is_compiled(python) != (name == "compiled"):
            print(f"{python} does not run the {name} build of Joey", file=sys.stderr)
            return 2
    best: dict[str, dict[str, float]] = {name: {} for name in builds}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            order = list(builds) if index % 2 == 0 else list(reversed(builds))
            for name in order:
                figures = _round(builds[name], COLUMNS[name], args.scenarios,
                                 Path(tmp) / "r.json", args.repeats)
                for key, ns in figures.items():
                    best[name][key] = min(ns, best[name].get(key, ns))
    titles = {s.key: s.title for s in SCENARIOS}
    print(f"{'scenario':40} {'pure µs':>9} {'compiled µs':>12} {'speed-up':>9}")
    for key in best["pure"]:
        pure, compiled = best["pure"][key], best["compiled"].get(key)
        if compiled is None:
            continue
        print(f"{titles.get(key, key):40} {pure / 1e3:9.2f} {compiled / 1e3:12.2f} "
              f"{pure / compiled:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
