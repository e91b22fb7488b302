"""The interactive docs pages: Swagger UI, ReDoc and Scalar, each one small HTML page that
loads its viewer's script (and stylesheet) from a CDN, or from where :class:`Assets` says, and
points it at the document's URL."""

from __future__ import annotations

import dataclasses
import html
import json

CDN = "https://cdn.jsdelivr.net/npm"


@dataclasses.dataclass(frozen=True, slots=True)
class Assets:
    """Where the docs pages load their viewers from.

    The default is the jsDelivr CDN. ``Assets.local(base)`` points all three at ``base``,
    laid out like ``node_modules`` after ``npm install swagger-ui-dist redoc
    @scalar/api-reference`` (serve that directory with :class:`joey.StaticFiles`), for an
    intranet or an offline machine.
    """

    swagger_ui_js: str = f"{CDN}/swagger-ui-dist@5/swagger-ui-bundle.js"
    swagger_ui_css: str = f"{CDN}/swagger-ui-dist@5/swagger-ui.css"
    redoc_js: str = f"{CDN}/redoc@2/bundles/redoc.standalone.js"
    scalar_js: str = f"{CDN}/@scalar/api-reference"

    @classmethod
    def local(cls, base: str) -> Assets:
        base = base.rstrip("/")
        return cls(
            swagger_ui_js=f"{base}/swagger-ui-dist/swagger-ui-bundle.js",
            swagger_ui_css=f"{base}/swagger-ui-dist/swagger-ui.css",
            redoc_js=f"{base}/redoc/bundles/redoc.standalone.js",
            scalar_js=f"{base}/@scalar/api-reference/dist/browser/standalone.js",
        )


def _head(title: str) -> str:
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n")


def _js(value: str) -> str:
    """A JavaScript string literal that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c")


def swagger_ui_page(title: str, document_url: str, assets: Assets) -> str:
    return (
        _head(title)
        + f'<link rel="stylesheet" href="{html.escape(assets.swagger_ui_css)}">\n'
        + '</head>\n<body>\n<div id="swagger-ui"></div>\n'
        + f'<script src="{html.escape(assets.swagger_ui_js)}"></script>\n'
        + "<script>\nwindow.ui = SwaggerUIBundle({url: " + _js(document_url)
        + ', dom_id: "#swagger-ui", deepLinking: true});\n</script>\n</body>\n</html>\n'
    )


def redoc_page(title: str, document_url: str, assets: Assets) -> str:
    return (
        _head(title)
        + "</head>\n<body>\n"
        + f'<redoc spec-url="{html.escape(document_url)}"></redoc>\n'
        + f'<script src="{html.escape(assets.redoc_js)}"></script>\n</body>\n</html>\n'
    )


def scalar_page(title: str, document_url: str, assets: Assets) -> str:
    return (
        _head(title)
        + "</head>\n<body>\n"
        + f'<script id="api-reference" data-url="{html.escape(document_url)}"></script>\n'
        + f'<script src="{html.escape(assets.scalar_js)}"></script>\n</body>\n</html>\n'
    )


__all__ = [
    "CDN",
    "Assets",
    "redoc_page",
    "scalar_page",
    "swagger_ui_page",
]
