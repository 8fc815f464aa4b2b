"""Damaged files a run can do without: caches that are set aside and rebuilt, never fatal.

A cache (recai-eval's answers, recai-openai's responses, recai-emb's vectors) only saves work.
When one cannot be read — a malformed SQLite file, a line or row that is not JSON, a directory
where the file should be, a truncated file, a file without read permission — the component that
owns it reports it **once**, with :func:`report_damaged` (a :class:`DamagedFileWarning` naming the
path, what is wrong and what was done), moves it aside with :func:`set_aside` (to
``<name>.corrupt-<n>``, kept for a post-mortem) and starts an empty one; when even that is not
possible (a read-only folder) it works without the cache. A damaged cache never fails a sample.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> (folder / "answers.sqlite").write_text("not a database")
14
>>> set_aside(folder / "answers.sqlite").name
'answers.sqlite.corrupt-1'
>>> (folder / "answers.sqlite").write_text("again")
5
>>> set_aside(folder / "answers.sqlite").name
'answers.sqlite.corrupt-2'
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["DamagedFileWarning", "set_aside", "report_damaged"]

_MAX_TRIES = 1000


class DamagedFileWarning(UserWarning):
    """A cache or other rebuildable file could not be read; it was set aside or bypassed."""


def set_aside(path: Path | str) -> Path | None:
    """Rename ``path`` (a file or a folder) to ``<name>.corrupt-<n>``, the first free ``n``.

    Returns the new path, or ``None`` when ``path`` could not be renamed (it does not exist, or
    its folder is not writable): the caller then bypasses it.
    """
    source = Path(path)
    for n in range(1, _MAX_TRIES + 1):
        target = source.with_name(f"{source.name}.corrupt-{n}")
        if os.path.lexists(target):
            continue
        try:
            os.rename(source, target)  # not replace: never overwrite an earlier damaged copy
        except FileExistsError:
            continue  # another process took this name first
        except OSError:
            return None
        return target
    return None


def report_damaged(path: Path | str, problem: str, action: str) -> str:
    """Warn in one paragraph: ``<path>: <problem>; <action>``. Returns the message.

    ``action`` says what was done (``"moved aside to ...; starting an empty cache"``,
    ``"working without the cache"``). The component calls this once per damaged file. The
    warning is shown as ``recai:0: DamagedFileWarning: ...``, without a line of source code.
    """
    flat = " ".join(f"{path}: {problem}; {action}".split())
    warnings.warn_explicit(flat, DamagedFileWarning, filename="recai", lineno=0, module="recai")
    return flat
