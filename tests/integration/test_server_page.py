"""The page at `/`: served without the key, same-origin only, and no door to other files or routes.

What the page does in a browser is tested in `tests/e2e/test_service_page.py`; here the HTTP side,
on the app in process (the key check and the routes are the app's, no process needed), and once on
an installed copy of the package data.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest
from serverkit import assert_error

from vvbench.server.page import FILES

ASSETS = ("/page/app.js", "/page/style.css")


@pytest.fixture(scope="module")
def keyed(service_factory):
    return service_factory(api_key="s3cret")


def test_the_page_and_its_files_are_served_without_the_key(keyed):
    page = keyed.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "http" not in csp
    for path in ASSETS:
        resp = keyed.get(path)
        assert resp.status_code == 200 and resp.content, path
        assert resp.headers["x-content-type-options"] == "nosniff"
    assert "javascript" in keyed.get("/page/app.js").headers["content-type"]
    assert keyed.get("/page/style.css").headers["content-type"].startswith("text/css")
    assert_error(keyed.get("/v1/stats"), 401)  # the data stays behind the key
    assert keyed.get("/v1/stats", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_the_page_references_only_its_own_files(keyed):
    html = keyed.get("/").text
    refs = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert refs == {"/page/app.js", "/page/style.css", "data:,"}, refs
    for path in ("/", *ASSETS):
        body = keyed.get(path).text
        assert not re.search(r"https?://|@import", body, re.I), path
    assert "url(" not in keyed.get("/page/style.css").text  # no fonts or images from anywhere


@pytest.mark.parametrize("path", ["/page/", "/page", "/page/index.html", "/page/../app.py", "/page/%2e%2e/app.py",
                                  "/page/app.js/", "/index.html", "/page/APP.JS"])
def test_nothing_else_under_the_page_is_served(keyed, path):
    assert_error(keyed.get(path), 404)


def test_the_page_is_get_only_and_not_in_the_api_schema(keyed):
    assert_error(keyed.post("/", json={}), 405)
    assert_error(keyed.delete("/page/app.js"), 405)
    paths = keyed.get("/openapi.json").json()["paths"]
    assert not {"/", *ASSETS} & set(paths)


def test_the_files_are_package_data():
    folder = resources.files("vvbench.server").joinpath("page")
    assert {name for name, _ in FILES.values()} <= {p.name for p in folder.iterdir()}
