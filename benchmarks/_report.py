"""What every benchmark in this folder shares: the machine line, peak memory, and writing its own
section of ``docs/performance.md``.

A benchmark script imports this module as ``from _report import ...``: Python puts the script's
folder first on ``sys.path``, so this works from any working directory. This file is not a test
and not part of any package.
"""

from __future__ import annotations

import fcntl
import os
import platform
import resource
import tempfile
from pathlib import Path

__all__ = ["machine", "peak_mb", "write_section"]


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine(*libraries: str) -> str:
    """One line naming cores, CPU, RAM, OS, Python and the versions of ``libraries``.

    Libraries are imported here by name (only the ones a benchmark asks for); numpy also names
    its BLAS.
    """
    cpu = _proc_field("/proc/cpuinfo", "model name") or "unknown CPU"
    total = _proc_field("/proc/meminfo", "MemTotal")
    ram = f"{int(total.split()[0]) / 1024**2:.1f} GiB" if total else "unknown"
    versions = []
    for name in libraries:
        try:
            module = __import__(name)
        except ImportError:
            versions.append(f"{name} (not installed)")
            continue
        text = f"{name} {getattr(module, '__version__', '?')}"
        if name == "numpy":
            try:
                blas = module.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
                text += f", BLAS {blas}"
            except Exception:  # noqa: BLE001 - informative only
                pass
        versions.append(text)
    tail = ", ".join([f"Python {platform.python_version()}", *versions])
    return (
        f"{os.cpu_count()} cores ({cpu}), {ram} RAM, {platform.system()} {platform.release()}; "
        f"{tail}"
    )


def write_section(path: Path, name: str, section: str) -> None:
    """Put ``section`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``.

    The rest of the file is kept; a missing section is appended. The file is locked while it is
    read and rewritten, and replaced atomically, so two benchmarks finishing at once both land.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{section.rstrip(chr(10))}\n{end}\n"
    path = Path(path)
    lock_path = Path(tempfile.gettempdir()) / f"recai-{path.resolve().parent.name}-{path.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else "# Performance\n\n"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1].lstrip("\n")
            text = head + block + ("\n" + tail if tail else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
