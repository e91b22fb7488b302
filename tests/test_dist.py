"""The release artifacts (issue 26, `make dist`): each one installs into a clean venv and serves.

Two modes:

- ``make test`` (this file as part of the suite): builds the source distribution and, from it,
  the pure wheel, as ``make dist`` does, into a scratch directory (with ``--no-isolation``:
  hatchling comes with the dev tools, so nothing is downloaded), checks their metadata, and
  installs each into a fresh venv with ``--no-deps``. The venv borrows the running
  interpreter's third-party packages through a ``.pth`` line, so no index is needed; ``joey``
  itself can only come from the artifact (the borrowed directory's own ``.pth`` files, an
  editable install's among them, are not read), and the smoke check asserts it does.
- ``make dist-check`` (``JOEY_DIST=dist``): the artifacts ``make dist`` built, the compiled
  wheel of every supported Python included, each installed with its extras (``server``,
  ``testing``) by pip, dependencies resolved from the index, into a clean venv of the Python it
  is for, with nothing borrowed.

Either way the smoke check imports the installed Joey (its version, its compiled or pure
modules), runs requests through the test client, and then ``joey run`` serves the app under
uvicorn on a loopback port and answers a real request.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.integration.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
COMPILED_MODULES: list[str] = (
    PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]["compiled-modules"]
)
_VERSION = re.search(r'^__version__ = "([^"]+)"$',
                     (ROOT / "src" / "joey" / "__init__.py").read_text(encoding="utf-8"), re.M)
assert _VERSION is not None
VERSION = _VERSION.group(1)
SUPPORTED = sorted(
    (c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"]
     if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)),
    key=lambda v: int(v.split(".")[1]),
)
DIST = os.environ.get("JOEY_DIST")  # make dist-check: the directory make dist built
DIST_DIR = ROOT / DIST if DIST else None

pytestmark = pytest.mark.timeout(600)

SMOKE_APP = '''\
import msgspec

from joey import App, NotFound


class Item(msgspec.Struct):
    name: str
    price: float


app = App()
ITEMS: dict[int, Item] = {}


@app.get("/")
async def home() -> dict[str, str]:
    return {"hello": "joey"}


@app.post("/items/{item_id:int}", status_code=201)
async def put(item_id: int, item: Item) -> Item:
    ITEMS[item_id] = item
    return item


@app.get("/items/{item_id:int}")
async def get(item_id: int, fields: str | None = None) -> dict[str, object]:
    if item_id not in ITEMS:
        raise NotFound(f"No item {item_id}.")
    return {"item": msgspec.to_builtins(ITEMS[item_id]), "fields": fields}
'''

SMOKE_CHECK = '''\
import importlib
import importlib.machinery
import json
import sys
from pathlib import Path

import joey
from joey.testing import TestClient
from smoke_app import app

version, build, modules = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
assert joey.__version__ == version, joey.__version__
installed = Path(joey.__file__).resolve()
assert Path(sys.prefix).resolve() in installed.parents, f"not the venv's Joey: {installed}"
for name in modules:
    path = importlib.import_module(name).__file__ or ""
    compiled = path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert compiled == (build == "compiled"), f"{name}: {path} in the {build} build"

with TestClient(app) as client:
    assert client.get("/").json() == {"hello": "joey"}
    created = client.post("/items/1", json={"name": "pen", "price": 1.5})
    assert created.status_code == 201 and created.json() == {"name": "pen", "price": 1.5}
    assert client.get("/items/1?fields=name").json() == {
        "item": {"name": "pen", "price": 1.5}, "fields": "name"}
    assert client.get("/items/2").status_code == 404
    assert client.post("/items/1", json={"name": "pen"}).status_code == 422
    assert client.get("/items/x").status_code == 404
print("smoke: ok", installed.parent)
'''


def _env() -> dict[str, str]:
    """This environment without what would point Python at the checkout or another venv."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith("PYTHON") and key != "VIRTUAL_ENV"}


def _run(argv: list[str | Path], cwd: Path, timeout: float = 300) -> str:
    result = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=_env(),
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _python(version: str) -> Path | None:
    """An interpreter for ``version``: pyenv's (as the Makefile finds it), else on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{version}.*/bin/python{version}")):
        return candidate
    found = shutil.which(f"python{version}")
    return Path(found) if found else None


def test_make_dist_builds_every_artifact_and_ci_checks_them(tmp_path: Path) -> None:
    plan = subprocess.run(
        ["make", "-n", "dist-check", f"VENV={tmp_path / 'fresh-venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert "-m build --outdir dist ." in plan  # the sdist, then the pure wheel from it
    compiled = [line for line in plan.splitlines() if line.startswith("JOEY_COMPILE=1")]
    assert len(compiled) == len(SUPPORTED) == 3, compiled  # 3.11, 3.12, 3.13
    for version, line in zip(SUPPORTED, compiled, strict=True):
        assert f"python{version} -m pip wheel" in line, line
        assert "--no-cache-dir" in line and line.endswith("dist/joey-*.tar.gz")
    assert "twine check --strict dist/joey-*" in plan
    assert "JOEY_DIST=dist" in plan and "tests/test_dist.py" in plan
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("matrix_cell lowest") < ci.index("make dist-check")


# The artifacts: which ones, where they come from.

def _artifact_kinds() -> list[str]:
    kinds = ["sdist", "wheel"]
    if DIST_DIR is not None:
        kinds += [f"compiled-{version}" for version in SUPPORTED]
    return kinds


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each kind's file: built here (``make test``), or found in ``JOEY_DIST``."""
    if DIST_DIR is None:
        out = tmp_path_factory.mktemp("dist")
        started = time.monotonic()
        # What `make dist` runs (the sdist, then the wheel built from it), without isolation.
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], ROOT)
        print(f"built the sdist and the wheel in {time.monotonic() - started:.1f} s")
    else:
        out = DIST_DIR
    found = {"sdist": list(out.glob("joey-*.tar.gz")),
             "wheel": list(out.glob("joey-*-py3-none-any.whl"))}
    for version in SUPPORTED:
        tag = "cp" + version.replace(".", "")
        found[f"compiled-{version}"] = list(out.glob(f"joey-*-{tag}-{tag}-*.whl"))
    return {kind: files[0] for kind, files in found.items() if len(files) == 1} | {
        f"problem: {kind}": Path(str(files)) for kind, files in found.items()
        if len(files) > 1 or (not files and kind in _artifact_kinds())}


def test_make_dist_built_one_artifact_of_each_kind(artifacts: dict[str, Path]) -> None:
    problems = {kind: str(path) for kind, path in artifacts.items() if kind.startswith("problem")}
    assert problems == {}, "a kind with no artifact or several ([] or [...])"
    for path in artifacts.values():
        assert f"joey-{VERSION}" in path.name, f"{path.name}: the version is {VERSION}"


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"joey-{VERSION}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def test_the_wheel_metadata_is_pyprojects(artifacts: dict[str, Path]) -> None:
    metadata = _wheel_metadata(artifacts["wheel"])
    assert metadata["Name"] == "joey" and metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == PROJECT["requires-python"]
    assert set(metadata.get_all("Provides-Extra") or []) == set(PROJECT["optional-dependencies"])
    required = {str(Requirement(r)) for r in metadata.get_all("Requires-Dist") or []
                if Requirement(r).marker is None}
    assert required == set(PROJECT["dependencies"])
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "## Installing Joey in your own project" in metadata.get_payload()


def test_the_pure_wheel_is_pure_and_typed(artifacts: dict[str, Path]) -> None:
    with zipfile.ZipFile(artifacts["wheel"]) as archive:
        names = archive.namelist()
        wheel = archive.read(f"joey-{VERSION}.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: true" in wheel and "Tag: py3-none-any" in wheel
    assert "joey/py.typed" in names and "joey/__main__.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd", ".c"))]
    entry_points = f"joey-{VERSION}.dist-info/entry_points.txt"
    assert entry_points in names  # the `joey` command


def test_the_sdist_holds_what_builds_both_wheels(artifacts: dict[str, Path]) -> None:
    with tarfile.open(artifacts["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("pyproject.toml", "hatch_build.py", "README.md", "CHANGELOG.md", "PKG-INFO",
                   "src/joey/__init__.py", "src/joey/py.typed", *(
                       f"src/{module}" for module in COMPILED_MODULES)):
        assert needed in names, needed
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", ".venv"))]


def test_twine_check_passes(artifacts: dict[str, Path]) -> None:
    files = [path for kind, path in artifacts.items() if not kind.startswith("problem")]
    output = _run([sys.executable, "-m", "twine", "check", "--strict", *files], ROOT)
    assert output.count("PASSED") == len(files), output


def test_the_dev_extra_declares_every_tool_these_tests_run() -> None:
    # `python -m pip|build|twine` and the backend: a venv made by uv (the matrix cells) holds
    # only what is declared, pip included. pip >= 23.1: `install --report` records the extras
    # of a path requirement (tests/test_install_docs.py).
    floors: dict[str, Version | None] = {}
    for line in PROJECT["optional-dependencies"]["dev"]:
        requirement = Requirement(line)
        bound = [s.version for s in requirement.specifier if s.operator == ">="]
        floors[requirement.name] = Version(bound[0]) if bound else None
    for tool in ("pip", "build", "twine", "hatchling"):
        assert floors.get(tool), f"pyproject.toml: the dev extra needs {tool!r}, with a >= bound"
    pip = floors["pip"]
    assert pip is not None and pip >= Version("23.1"), pip


# Each artifact in a venv of its own.

@pytest.mark.parametrize("kind", _artifact_kinds())
def test_each_artifact_installs_into_a_clean_venv_and_serves(
    kind: str, artifacts: dict[str, Path], tmp_path: Path,
) -> None:
    build = "compiled" if kind.startswith("compiled") else "pure"
    artifact = artifacts[kind]
    started = time.monotonic()
    prefix = tmp_path / "venv"
    python = prefix / "bin" / "python"
    if DIST_DIR is None:
        # Offline: no pip in the venv (this interpreter's pip installs into it), and this
        # interpreter's third-party packages borrowed through a .pth line: not its joey.
        _run([sys.executable, "-m", "venv", "--without-pip", prefix], tmp_path)
        site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         tmp_path).strip())
        (site / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
        # --ignore-installed: where the borrowed packages hold a joey (not an editable one:
        # the compiled build's venv), pip would otherwise call it installed and skip the
        # artifact; and it never uninstalls what is borrowed.
        _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
              "--no-deps", "--no-index", "--no-build-isolation", "--ignore-installed",
              artifact], tmp_path)
    else:
        base = _python(kind.partition("-")[2]) if build == "compiled" else Path(sys.executable)
        assert base is not None, f"no Python for the {kind} wheel: pyenv install it"
        _run([base, "-m", "venv", prefix], tmp_path)
        requirement = f"joey[server,testing] @ {artifact.as_uri()}"
        # Not a wheel pip cached under the sdist's path (one built with JOEY_COMPILE=1 would
        # pass for the pure build): the sdist is built here.
        no_cache = ["--no-cache-dir"] if kind == "sdist" else []
        _run([python, "-m", "pip", "install", "--quiet", *no_cache, requirement], tmp_path,
             timeout=600)
    installed = time.monotonic() - started

    work = tmp_path / "work"
    work.mkdir()
    (work / "smoke_app.py").write_text(SMOKE_APP, encoding="utf-8")
    (work / "smoke_check.py").write_text(SMOKE_CHECK, encoding="utf-8")
    modules = [path.removesuffix(".py").replace("/", ".") for path in COMPILED_MODULES]
    output = _run([python, "smoke_check.py", VERSION, build, json.dumps(modules)], work)
    assert "smoke: ok" in output and str(prefix) in output, output

    # The installed `joey` command serves the app under uvicorn: a real request over loopback.
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [str(prefix / "bin" / "joey"), "run", "smoke_app:app", "--port", str(port)],
        cwd=work, env=_env() | {"PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    assert json.loads(answer.read()) == {"hello": "joey"}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    print(f"{kind}: installed in {installed:.1f} s, served in {time.monotonic() - started:.1f} s")
