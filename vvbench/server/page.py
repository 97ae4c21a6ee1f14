"""The service's page at `/`: speak, run a long-form job, watch the live state, from a browser.

Plain HTML, CSS and JavaScript shipped as package data (`vvbench/server/page/`), served from the
same origin, with no build step and nothing fetched from elsewhere (the Content-Security-Policy
allows only this origin, and `blob:` for audio the page fetched itself). The page holds no data,
so it is served without the API key even when one is configured; everything it shows comes from
`/v1/*`, which it calls with the key the user typed (kept in `sessionStorage`). Only the three
file routes below exist: no directory is served, so no path can reach another file.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self' blob:; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer"}
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/page/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/page/style.css": ("style.css", "text/css; charset=utf-8")}


@functools.cache
def _read(name: str) -> bytes:
    return resources.files("vvbench.server").joinpath("page", name).read_bytes()


def _route(name: str, media_type: str):
    async def serve_file() -> Response:
        return Response(_read(name), media_type=media_type, headers=_HEADERS)

    return serve_file


for _path, (_name, _media) in FILES.items():
    router.add_api_route(_path, _route(_name, _media), methods=["GET"], name=f"page:{_name}")
