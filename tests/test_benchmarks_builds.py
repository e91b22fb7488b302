"""The benchmark harness's two Joey columns (issue 19): each runs the build it is named after,
the compiled one may be missing in smoke mode only, servers run under uvicorn and granian, and
issue 19's targets are marked from the tables. No timing is asserted here.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import apps  # noqa: E402
import builds  # noqa: E402
import endtoend  # noqa: E402
import report  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

RAW, JOEY, COMPILED = apps.RAW, apps.JOEY, apps.JOEY_COMPILED


def _wrong_column(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A Joey column whose interpreter (this one) imports the other build, and that build."""
    compiled_here, _ = apps.joey_build()
    if compiled_here:  # the suite run against the compiled wheel: the pure column is wrong
        monkeypatch.delenv("JOEY_EXPECT_COMPILED", raising=False)
        return JOEY, "pure"
    monkeypatch.setattr(apps, "COMPILED_PYTHON", Path(sys.executable))
    return COMPILED, "compiled"


def test_smoke_mode_skips_a_missing_compiled_venv_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(apps, "COMPILED_PYTHON", tmp_path / "absent" / "bin" / "python")
    kept, found = builds.check([RAW, JOEY, COMPILED], smoke=True)
    assert kept == [RAW, JOEY]
    assert set(found) == {JOEY}
    said = capsys.readouterr().err
    assert "the joey-compiled column is skipped" in said
    assert "make bench-compiled" in said


def test_a_full_run_refuses_to_start_without_the_compiled_venv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(apps, "COMPILED_PYTHON", tmp_path / "absent" / "bin" / "python")
    with pytest.raises(SystemExit, match="make bench-compiled"):
        builds.check([RAW, JOEY, COMPILED], smoke=False)


def test_a_column_running_the_other_build_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    column, want = _wrong_column(monkeypatch)
    with pytest.raises(SystemExit, match=f"the {column} column must run {want} Joey"):
        builds.check([RAW, column], smoke=True)
    with pytest.raises(RuntimeError, match=f"must run {want} Joey, but .* imports"):
        apps.load(column)  # what every worker and server does before building an app


@pytest.mark.skipif(shutil.which("wrk") is None, reason="run_all needs wrk")
def test_a_server_of_the_other_build_is_an_error_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    column, want = _wrong_column(monkeypatch)
    scenarios = [s for s in SCENARIOS if s.end_to_end]
    results = endtoend.run_all([column], scenarios, 1, 0.5, 0, 4, tmp_path, "uvicorn")
    for scenario in scenarios:
        detail = results[column][scenario.key]["detail"]
        assert detail.startswith("server did not start"), detail
        assert f"must run {want} Joey" in detail


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_both_servers_answer_every_end_to_end_scenario(server: str, tmp_path: Path) -> None:
    process, port = endtoend.start(JOEY, server, tmp_path / "serve.log")
    try:
        for scenario in (s for s in SCENARIOS if s.end_to_end):
            assert endtoend.verify(port, scenario) is None, scenario.key
        if shutil.which("wrk"):  # a run also reads the server's CPU per request from /proc
            run = endtoend._wrk(port, SCENARIOS[0], 1, 4, process.pid)
            assert run["status"] == "ok", run
            assert run["rps"] > 0 and run["cpu_us"] > 0
    finally:
        endtoend.stop(process)
    assert process.returncode is not None


def test_the_cpu_of_a_process_tree_is_read_from_proc() -> None:
    import os

    spent = endtoend.cpu_seconds(os.getpid())
    assert spent > 0
    assert endtoend.cpu_seconds(2**22 + 1) == 0.0  # no such process: nothing counted


PREVIOUS = """# Joey benchmark results

Written by `make bench` (`benchmarks/run.py`) on 2026-11-30 02:41 UTC in 15.8 min. Noisy.

- Joey revision: 2db708d

### In-process cost per request (µs, lower is better)

| scenario | raw | joey | blacksheep | Joey ÷ raw | Joey ÷ best peer |
| --- | --- | --- | --- | --- | --- |
| plaintext GET | 0.74 | 3.00 | 3.63 | 4.05x | 0.83x (blacksheep) |
| JSON GET | 0.85 | 3.50 | 7.18 | 4.12x | 0.49x (blacksheep) |
| last of 10,000 routes | 1.11 | 1,006.00 | 5.49 | - | - |
| bearer token checked -> JSON | n/a | error | n/a | - | - |

### End to end under uvicorn (requests/s, higher is better)

| scenario | raw | joey |
| --- | --- | --- |
| plaintext GET | 23,089 | 16,499 |
"""


def test_the_previous_pure_figures_come_from_the_in_process_table_only() -> None:
    figures, source = builds.previous_inprocess(PREVIOUS)
    assert figures == {"plaintext GET": 3.0, "JSON GET": 3.5, "last of 10,000 routes": 1006.0}
    assert source == "committed RESULTS.md (2026-11-30 02:41 UTC, Joey revision: 2db708d)"
    assert builds.previous_inprocess("# no table here\n") == ({}, "")


def _table(rows: dict[str, dict[str, report.Cell]], lower: bool) -> report.Table:
    frameworks = [RAW, JOEY, COMPILED, "blacksheep"]
    return report.Table("t", "n", frameworks, list(rows.items()), lower_is_better=lower)


def test_issue_19_targets_are_marked_from_the_compiled_column() -> None:
    inproc = _table(
        {
            # 3.6 / 1.5 = 2.4x ahead of blacksheep; 1.5 / 0.8 = 1.88x raw
            "plaintext GET": {RAW: 0.8, JOEY: 3.12, COMPILED: 1.5, "blacksheep": 3.6},
            # 2.2 / 2.0 = 1.1x ahead: less than 15%; 2.0 / 0.9 = 2.22x raw
            "JSON GET": {RAW: 0.9, JOEY: 3.5, COMPILED: 2.0, "blacksheep": 2.2},
            "path parameter /users/{id:int}": {
                RAW: 1.0, JOEY: 5.0, COMPILED: 2.4, "blacksheep": 9.0,
            },
            "rate-limited (in memory) plaintext": {RAW: "n/a", JOEY: 9.0, COMPILED: 8.0},
        },
        lower=True,
    )
    uvicorn = _table({"plaintext GET": {RAW: 100.0, JOEY: 90.0, COMPILED: 96.0,
                                        "blacksheep": 90.0}}, lower=False)  # fmt: skip
    granian = _table({"plaintext GET": {RAW: 100.0, JOEY: 90.0, COMPILED: "error",
                                        "blacksheep": 90.0}}, lower=False)  # fmt: skip
    previous = ({"plaintext GET": 3.0, "JSON GET": 3.5}, "committed RESULTS.md (then)")
    lines = builds.targets(inproc, {"uvicorn": uvicorn, "granian": granian}, previous)
    assert lines == [
        "- [missed] compiled, in-process: ahead of every peer by >= 15% in every scenario"
        " (time ÷ best peer's <= 0.87x); not in: JSON GET (0.91x blacksheep)",
        "- [met] compiled, plaintext GET: within 2x of raw (1.88x)",
        "- [missed] compiled, JSON GET: within 2x of raw (2.22x)",
        "- [met] compiled, path parameter /users/{id:int}: within 2.5x of raw (2.40x)",
        "- [met] compiled, end to end under uvicorn, plaintext GET: >= 0.95x raw and ahead of"
        " every peer (0.96x raw, 1.07x blacksheep)",
        "- [missed] compiled, end to end under granian, plaintext GET: >= 0.95x raw and ahead"
        " of every peer (joey-compiled: error)",
        "- [met] pure: no slower than before, within 3% (indicative only: this run's joey"
        " column ÷ the committed RESULTS.md (then), geometric mean over 2 scenarios: 1.02x;"
        " above 1.03x: plaintext GET 1.04x)",
    ]


def test_end_to_end_is_also_read_by_the_servers_cpu_per_request() -> None:
    # raw's µs ÷ compiled Joey's: 30 / 31 = 0.97x (met), 30 / 40 = 0.75x (missed)
    uvicorn = _table({"plaintext GET": {RAW: 30.0, JOEY: 33.0, COMPILED: 31.0},
                      "JSON GET": {RAW: 30.0, JOEY: 45.0, COMPILED: 40.0}}, lower=True)
    granian = _table({"plaintext GET": {RAW: "error", JOEY: 9.0, COMPILED: 8.0}}, lower=True)
    lines = builds.targets(None, {}, ({}, ""), e2e_cpu={"uvicorn": uvicorn, "granian": granian})
    assert lines == [
        "- [met] compiled, end to end under uvicorn, plaintext GET, by the server's CPU per"
        " request: >= 0.95x raw (0.97x: 31.0 µs, raw 30.0 µs per request)",
        "- [missed] compiled, end to end under uvicorn, JSON GET, by the server's CPU per"
        " request: >= 0.95x raw (0.75x: 40.0 µs, raw 30.0 µs per request)",
        "- [not measured] compiled, end to end under granian, plaintext GET, by the server's"
        " CPU per request: >= 0.95x raw (raw: n/a)",
    ]


def test_without_earlier_figures_the_pure_target_is_not_measured() -> None:
    inproc = _table({"plaintext GET": {RAW: 0.8, JOEY: 3.0, COMPILED: 1.5}}, lower=True)
    lines = builds.targets(inproc, {}, ({}, ""))
    assert lines[-1] == (
        "- [not measured] pure: no slower than before, within 3% (no earlier figures)"
    )
    assert lines[0].startswith("- [not measured] compiled, in-process")  # no peer measured
    assert "- [not measured] compiled, JSON GET: within 2x of raw (not run)" in lines


def test_tables_show_each_joey_column_against_raw_and_the_best_peer() -> None:
    table = _table(
        {"JSON GET": {RAW: 1.0, JOEY: 4.0, COMPILED: 2.0, "blacksheep": 8.0}}, lower=True
    )
    head, _, row = table.markdown().splitlines()[4:7]
    assert head.endswith(
        "| joey ÷ raw | joey ÷ best peer | joey-compiled ÷ raw | joey-compiled ÷ best peer |"
    )
    assert row == (
        "| JSON GET | 1.00 | 4.00 | 2.00 | 8.00 | 4.00x | 0.50x (blacksheep) | 2.00x"
        " | 0.25x (blacksheep) |"
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_bench_builds_the_compiled_wheel_into_its_venv_before_running() -> None:
    import subprocess

    plan = subprocess.run(
        ["make", "-n", "bench"], cwd=BENCHMARKS.parent, capture_output=True, text=True,
        timeout=30, check=True,
    ).stdout.splitlines()  # fmt: skip
    wheel = next(i for i, line in enumerate(plan) if "JOEY_COMPILE=1" in line)
    install = next(
        i for i, line in enumerate(plan)
        if "benchmarks/.venv-compiled/bin/pip" in line and "--no-deps dist/joey-" in line
    )  # fmt: skip
    run = next(i for i, line in enumerate(plan) if "benchmarks/run.py" in line)
    assert wheel < install < run, plan


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_results_record_only_committed_code(tmp_path: Path) -> None:
    """Issue 23: RESULTS.md was once written from a `-dirty` tree; such figures name no code."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, timeout=30)

    git("init", "-q")
    with pytest.raises(report.UncommittedCode, match="committed code"):
        report.committed_revision(str(tmp_path))  # no commit yet
    (tmp_path / "app.py").write_text("x = 1\n")
    git("add", "app.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    revision = report.committed_revision(str(tmp_path))
    assert revision and not revision.endswith("-dirty")
    (tmp_path / "app.py").write_text("x = 2\n")
    with pytest.raises(report.UncommittedCode, match=r"-dirty.*commit \(or stash\)"):
        report.committed_revision(str(tmp_path))


def test_a_results_run_on_a_dirty_tree_stops_before_measuring(tmp_path: Path) -> None:
    """`make bench` refuses at once (not after 18 minutes) when it would record uncommitted code.

    Runs only where this checkout is dirty (a developer's tree mid-change); on a clean clone the
    refusal is covered by the test above.
    """
    if not report.git_revision().endswith("-dirty"):
        pytest.skip("this checkout is clean")
    import run

    with pytest.raises(report.UncommittedCode):
        run.main(["--skip", "inprocess,e2e,startup,tasks,channels,openapi"])
