"""The interactive API reference under ``/schema/``, offline.

Swagger UI 5 (the npm package ``swagger-ui-dist``, vendored with its licence under
``api/static/apidocs/``; the PyPI ``swagger-ui-bundle`` ships Swagger UI 4, which cannot read the
OpenAPI 3.1 document Litestar writes) is served from ``/schema/static/``, so the page works on a
machine without internet: Litestar's Swagger plugin alone would load the bundle and a favicon from
a CDN. The OpenAPI document stays at ``/schema/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

__all__ = ["STATIC_PATH", "render_plugins", "static_router", "swagger_dir"]

STATIC_PATH = "/schema/static"


def swagger_dir() -> Path:
    return Path(__file__).resolve().parent / "static" / "apidocs"


def render_plugins() -> list[Any]:
    """Swagger UI at ``/schema/`` (and ``/schema/swagger``) on local assets; the JSON document."""
    swagger = SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
        css_url=f"{STATIC_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{STATIC_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{STATIC_PATH}/favicon-32x32.png'>",
    )
    return [swagger, JsonRenderPlugin()]


def static_router() -> Any:
    return create_static_files_router(path=STATIC_PATH, directories=[swagger_dir()], include_in_schema=False,
                                      name="apidocs_static")
