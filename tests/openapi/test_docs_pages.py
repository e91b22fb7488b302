"""Swagger UI, ReDoc and Scalar in headless Chromium, with their scripts from the npm
registry (fetched by this test with ``npm pack``) served by the app itself, no CDN: each page
renders the example's operations."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.servers import run_server, uvicorn_argv

CHROMIUM = "/usr/bin/chromium"
PACKAGES = {"swagger-ui-dist": "swagger-ui-dist", "redoc": "redoc",
            "@scalar/api-reference": "scalar-api-reference"}


def _chromium() -> str:
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found:
        return found
    install = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"
    try:
        subprocess.run(["bash", "-c", install], check=True, capture_output=True, timeout=900)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("chromium is not installed and apt-get install -y chromium failed")
    return CHROMIUM


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three viewers' npm packages, unpacked like node_modules (their bundles stand
    alone, so the packages' own dependencies are not needed)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    tmp = tmp_path_factory.mktemp("npm")
    result = subprocess.run(["npm", "pack", "--silent", *PACKAGES], cwd=tmp, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    modules = tmp / "node_modules"
    for package, stem in PACKAGES.items():
        tarball = next(tmp.glob(f"{stem}-*.tgz"))
        target = modules / package
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp / stem, filter="data")
        target.parent.mkdir(parents=True, exist_ok=True)
        (tmp / stem / "package").rename(target)
    return modules


def _dom(browser: str, url: str, profile: Path) -> str:
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False,
    )
    return result.stdout


@pytest.mark.timeout(300)
def test_docs_pages_render_the_example_operations(assets: Path, tmp_path: Path) -> None:
    browser = _chromium()
    env = {"JOEY_DOCS_ASSETS": str(assets)}
    with run_server(uvicorn_argv("tests.openapi.docs_app:app"), tmp_path, env=env) as server:
        pages = {"docs": "", "redoc": "", "scalar": ""}
        for page in pages:
            pages[page] = _dom(browser, f"{server.base_url}/{page}", tmp_path / page)
        log = server.output
    # the viewers came from this server, not from a CDN
    for script in ("/assets/swagger-ui-dist/swagger-ui-bundle.js HTTP/1.1\" 200",
                   "/assets/swagger-ui-dist/swagger-ui.css HTTP/1.1\" 200",
                   "/assets/redoc/bundles/redoc.standalone.js HTTP/1.1\" 200",
                   "scalar/api-reference/dist/browser/standalone.js HTTP/1.1\" 200"):
        assert script in log, script
    for page, dom in pages.items():
        # every viewer fetched the document and rendered the books operations from it
        assert "Add a book" in dom, f"{page}: {dom[-3000:]}"
        assert "/books/" in dom, page
    assert log.count("GET /openapi.json") >= 3
