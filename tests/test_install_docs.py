"""Every ``pip install`` line of the README and docs/ works as written today (issue 26).

Joey is not on the Package Index, so a line that installs ``joey`` by name asks PyPI for
somebody else's package, or for nothing: such a line is allowed only where it says it is for
once Joey is published. Every other line names a checkout, a wheel of this version, or another
package; every extra it names exists (pip only warns about an unknown extra, then installs
without it). One line of each shape is handed to pip (``--dry-run``, offline), with the
checkout and a wheel of this tree in place of ``/path/to/joey`` (``-e`` is left to ``make run``,
which installs that way: offline it would need hatchling's ``editables`` too).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
             ["project"]["optional-dependencies"])
_VERSION = re.search(r'^__version__ = "([^"]+)"$',
                     (ROOT / "src" / "joey" / "__init__.py").read_text(encoding="utf-8"), re.M)
assert _VERSION is not None
VERSION = _VERSION.group(1)
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
PUBLISHED = "once Joey is published"  # what a line that installs from the index must say
COMMAND = re.compile(r"pip install ([^`\n]+)")
REQUIREMENT = re.compile(r"^(?P<where>.*?)(\[(?P<extras>[^\]]*)\])?$")


def _commands() -> list[tuple[str, str, list[str]]]:
    """(page:line, the line, the arguments after ``pip install``) of every page."""
    found = []
    for page in PAGES:
        for number, line in enumerate((ROOT / page).read_text(encoding="utf-8").splitlines(), 1):
            for match in COMMAND.finditer(line):
                arguments = shlex.split(match.group(1), comments=True)
                found.append((f"{page}:{number}", line, arguments))
    return found


COMMANDS = _commands()


def _joey_requirements(arguments: list[str]) -> list[str]:
    """The arguments that install Joey: by name, a checkout (a path), or a wheel."""
    return [a for a in arguments if not a.startswith("-")
            and re.match(r"(joey\b|\.\[|\.$|/.*joey|.*joey-[^/]*\.whl)", a)]


def test_the_pages_have_install_lines() -> None:
    assert len(COMMANDS) >= 10, COMMANDS
    shapes = {argument for _, _, arguments in COMMANDS for argument in arguments}
    assert "/path/to/joey[server]" in shapes


@pytest.mark.parametrize(("where", "line", "arguments"), COMMANDS,
                         ids=[where for where, _, _ in COMMANDS])
def test_an_install_line_works_today(where: str, line: str, arguments: list[str]) -> None:
    for requirement in _joey_requirements(arguments):
        name, _, url = requirement.partition(" @ ")
        parsed = REQUIREMENT.match(name.strip())
        assert parsed is not None
        source = url or parsed.group("where")
        if source in ("joey", "joey==" + VERSION):
            assert PUBLISHED in line, (
                f"{where}: {line.strip()!r} asks the Package Index, which has no Joey yet. "
                f"Install from a checkout ('/path/to/joey[extra]') or a wheel, or say "
                f"{PUBLISHED!r} on the line (docs/installation.md)")
        unknown = {e.strip() for e in (parsed.group("extras") or "").split(",")} - EXTRAS - {""}
        assert not unknown, f"{where}: no such extra {sorted(unknown)} (pyproject: {EXTRAS})"


def test_every_wheel_named_is_this_version() -> None:
    for page in PAGES:
        for named in re.findall(r"joey-(\d[^-/\s`'\"]*)-", (ROOT / page).read_text("utf-8")):
            assert named == VERSION, f"{page}: joey-{named}-...whl, the version is {VERSION}"


def test_the_index_line_is_marked_where_it_is_shown() -> None:
    marked = [where for where, line, arguments in COMMANDS
              if PUBLISHED in line and "joey[server]" in arguments]
    assert {where.split(":")[0] for where in marked} >= {"README.md", "docs/installation.md"}


def _pip(arguments: list[str], cwd: Path) -> None:
    """This interpreter's pip (the dev extra declares it), failing with what pip said."""
    result = subprocess.run([sys.executable, "-m", "pip", *arguments], cwd=cwd,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"pip {arguments}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _pip(["wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
          "-w", str(out), str(ROOT)], out)
    (built,) = out.glob("joey-*.whl")
    return built


@pytest.mark.parametrize("shape", [
    "'/path/to/joey[server]'",
    "'/path/to/joey/dist/joey-VERSION-py3-none-any.whl[server]'",
    "'joey[server] @ file:///path/to/joey/dist/joey-VERSION-py3-none-any.whl'",
])
def test_pip_takes_each_shape_of_line(shape: str, wheel: Path, tmp_path: Path) -> None:
    shape = shape.replace("VERSION", VERSION)
    shown = [line for _, line, _ in COMMANDS if shape in line] or [
        line for page in PAGES for line in (ROOT / page).read_text("utf-8").splitlines()
        if shape.strip("'") in line]
    assert shown, f"no page shows {shape}"
    argv = shlex.split(shape.replace(f"/path/to/joey/dist/{wheel.name}", str(wheel))
                       .replace("/path/to/joey", str(ROOT)))
    report = tmp_path / "report.json"
    # --ignore-installed: a joey installed here already (the compiled build's venv) would make
    # the report empty
    _pip(["install", "--dry-run", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
          "--ignore-installed", "--report", str(report), *argv], tmp_path)
    (installed,) = json.loads(report.read_text())["install"]
    assert installed["metadata"]["name"] == "joey"
    assert installed["metadata"]["version"] == VERSION
    assert installed["requested_extras"] == ["server"]
