"""The dashboard: one static page (`breakingwind/web/`) that talks to the public APIs only.

The page and its assets hold no data, so they are served without the API key (the page asks
for the key and sends it on every API call). The page's Content-Security-Policy allows only this
origin's scripts, styles and connections: model text rendered by mistake as HTML could not run.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSETS_PREFIX = "/web"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self' data: blob:; media-src data: blob:; form-action 'none';"
        " base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def dashboard_page(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers=PAGE_HEADERS)


ROUTES = [
    Route("/", dashboard_page, methods=["GET"]),
    Mount(ASSETS_PREFIX, StaticFiles(directory=WEB_DIR), name="web"),
]
