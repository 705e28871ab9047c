"""Which run and AOI a log line belongs to, for JSON log lines (``--log-format json``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("asm_log_context", default={})  # noqa: B039


def current() -> dict[str, Any]:
    """The fields (``run_id``, ``aoi_id``...) to add to log lines of this thread."""
    return _CONTEXT.get()


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written inside the block (nested blocks merge)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)
