"""Static files: ``app.web.add_static(prefix, path)`` and ``Blueprint.static(uri, path)``.

A directory is served under ``prefix`` (``/static/app.css`` is
``DIR/app.css``, subdirectories included); a single file is served at
``prefix`` itself. GET and HEAD only; the content type is guessed from the
file name. A path outside the directory (``..``, a symlink leading out), a
missing file or a directory answers 404, as aiohttp's static route does.

Files are read whole when asked, on the worker's event loop: this is for the
small assets of a dashboard, not for large downloads (put a web server in
front of the worker for those).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from detstream.errors import InvalidArgument

from .views import NotFound, Request, Response, View

__all__ = ["static_route", "static_view"]


def static_route(prefix: str, target: str | Path) -> tuple[str, Path]:
    """The page path serving ``target`` under ``prefix``, and the target as an absolute path."""
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise InvalidArgument(f"a static prefix must be a str starting with '/', got {prefix!r}")
    path = Path(target).expanduser().resolve()
    if path.is_dir():
        return prefix.rstrip("/") + "/{filename:.+}", path
    if path.is_file():
        return prefix, path
    raise InvalidArgument(f"static files for {prefix!r}: no file or directory at {str(target)!r}")


def static_view(target: Path) -> type[View]:
    """A View answering GET/HEAD with the files of directory ``target`` (or the file itself)."""

    class StaticFiles(View):
        root = target

        async def get(self, request: Request, filename: str | None = None) -> Response:
            path = self.root if filename is None else _inside(self.root, filename)
            if path is None or not path.is_file():
                raise NotFound(f"no file at {request.path}")
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return self.bytes(path.read_bytes(), content_type=content_type)

    StaticFiles.__qualname__ = StaticFiles.__name__ = f"StaticFiles[{target.name}]"
    return StaticFiles


def _inside(root: Path, filename: str) -> Path | None:
    """``root/filename`` if it stays inside ``root`` once resolved, else None."""
    try:
        path = (root / filename.lstrip("/")).resolve()
        path.relative_to(root)
    except (ValueError, OSError):
        return None
    return path
