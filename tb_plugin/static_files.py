"""Find the plugin's static files, refusing anything outside ``tb_plugin/static``.

Example:
    >>> path, content_type = resolve("index.js")
    >>> path.name, content_type
    ('index.js', 'text/javascript')
"""

from __future__ import annotations

from pathlib import Path

from tb_plugin.errors import BadRequest, NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".md": "text/plain",
    "": "text/plain",  # LICENSE
}


def resolve(relative: str) -> tuple[Path, str]:
    """The file and content type for the URL path ``relative`` (below the plugin's prefix).

    Raises ``BadRequest`` for absolute paths, ``..``/``.``/empty segments and backslashes,
    ``NotFound`` for missing files and file types the tab does not ship.
    """
    parts = relative.split("/")
    if relative.startswith("/") or "\\" in relative or "\0" in relative or any(p in ("", ".", "..") for p in parts):
        raise BadRequest(f"static paths are relative file names inside the plugin; refused {relative!r}")
    path = STATIC_DIR.joinpath(*parts).resolve()
    content_type = CONTENT_TYPES.get(path.suffix)
    if not path.is_relative_to(STATIC_DIR) or not path.is_file() or content_type is None:
        raise NotFound(f"no static file {relative!r}")
    return path, content_type
