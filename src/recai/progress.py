"""Progress of long loops: a tqdm bar on a terminal, a plain line every N seconds in a log.

Every long loop of recai and its plugins (training epochs, fine-tuning steps, evaluation batches)
reports through :class:`Progress`, so that

- on a terminal it is a tqdm bar (the fields the loop reports shown beside it);
- when stderr is not a terminal (CI, ``nohup``, ``2> log``) it prints one plain line every
  ``interval`` seconds (``RECAI_PROGRESS_INTERVAL``, default 30), and a last one when the loop
  ends if it ran that long::

      sasrec.v1 (ce): epoch 12/50 | loss=5.812 NDCG@10=0.1034 best=0.105 | elapsed 1m32s, eta 4m51s

- one switch silences all of them: ``Progress(..., enabled=False)`` for one loop, or
  ``with recai.progress.enabled(False):`` for everything inside the block (``recai run
  --no-progress`` and ``recai.run(..., progress=False)`` set it around the whole run, so a
  component's ``fit`` needs no parameter of its own).

A loop over an iterable::

    for batch in Progress(batches, desc="ranking sasrec", unit="batch"):
        ...

A loop that reports fields (``update`` advances the count and sets them)::

    with Progress(total=epochs, desc="bpr.v1", unit="epoch") as bar:
        for epoch in range(epochs):
            loss = run_epoch(epoch)
            bar.update(loss=loss, **{"NDCG@10": validate()})

What a bar or a line shows never holds a secret: its text passes through
:func:`recai.secrets.redact_known` (the values a recipe took from the environment, and anything
shaped like a key), so a loop named after a ``${DATA_DIR}`` path shows ``***`` instead.

The lines are written by the process that creates the object; in a data-parallel run pass
``enabled=rank == 0``. The switch is a :mod:`contextvars` variable: a thread started inside
``enabled(False)`` does not inherit it (copy the context, or pass ``enabled`` explicitly).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import IO, Any, Generic, TypeVar, overload

from .errors import RecaiError

__all__ = ["Progress", "enabled", "is_enabled", "default_interval", "INTERVAL_ENV"]

T = TypeVar("T")

INTERVAL_ENV = "RECAI_PROGRESS_INTERVAL"
"""Environment variable: seconds between two plain progress lines (``0``: a line per update)."""

DEFAULT_INTERVAL = 30.0

_ENABLED: ContextVar[bool] = ContextVar("recai_progress_enabled", default=True)


def is_enabled() -> bool:
    """Whether progress is shown here (``False`` inside ``with enabled(False):``)."""
    return _ENABLED.get()


@contextlib.contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Show (``True``) or silence (``False``) every :class:`Progress` created inside the block.

    >>> with enabled(False):
    ...     is_enabled()
    False
    >>> is_enabled()
    True
    """
    token = _ENABLED.set(bool(flag))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def default_interval() -> float:
    """Seconds between plain progress lines: ``RECAI_PROGRESS_INTERVAL``, else 30."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise RecaiError(
            f"{INTERVAL_ENV}={raw!r} is not a number of seconds >= 0 (e.g. 30; 0 prints a line "
            "at every update)"
        )
    return value


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _in_notebook(stream: Any) -> bool:
    """Jupyter's stderr is not a TTY but shows tqdm's widget bar."""
    return "ipykernel" in sys.modules and type(stream).__module__.startswith("ipykernel")


def format_seconds(seconds: float) -> str:
    """``42s``, ``5m07s``, ``1h02m03s``.

    >>> format_seconds(42.4), format_seconds(307), format_seconds(3723)
    ('42s', '5m07s', '1h02m03s')
    """
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def _redacted(text: str) -> str:
    """``text`` without registered secrets (none can be registered before :mod:`recai.secrets`
    is imported, so it is not imported here)."""
    secrets = sys.modules.get("recai.secrets")
    return secrets.redact_known(text) if secrets is not None else text


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        return f"{float(v):.4g}"
    return str(v)


class Progress(Generic[T]):
    """Progress of one loop (see the module docstring): a bar, periodic lines or nothing.

    ``iterable`` (optional): iterate over the object to advance by one per item. ``total``: the
    expected count (taken from ``len(iterable)`` when it has one). ``desc`` names the loop,
    ``unit`` what is counted (``"epoch"``, ``"step"``). ``enabled=False`` shows nothing, and so
    does a surrounding ``with enabled(False):``. ``interval``: seconds between plain lines
    (default :func:`default_interval`). ``stream``: where to write (default ``sys.stderr``).
    ``initial``: the count already done (a resumed run).

    >>> import io
    >>> log = io.StringIO()  # not a terminal: plain lines
    >>> with Progress(total=2, desc="demo", unit="epoch", interval=0, stream=log) as bar:
    ...     bar.update(loss=0.5)
    ...     bar.update(loss=0.25)
    >>> print(log.getvalue(), end="")
    demo: epoch 1/2 | loss=0.5 | elapsed 0s, eta 0s
    demo: epoch 2/2 | loss=0.25 | elapsed 0s
    demo: done, epoch 2/2 | loss=0.25 | elapsed 0s
    """

    # Two overloads for type checkers: without an iterable, `with Progress(total=...) as bar`
    # is a Progress[Any] (there is no item type to infer).
    @overload
    def __init__(
        self: Progress[Any],
        iterable: None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        enabled: bool = True,
        interval: float | None = None,
        stream: IO[str] | None = None,
        initial: int = 0,
    ) -> None: ...

    @overload
    def __init__(
        self,
        iterable: Iterable[T],
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        enabled: bool = True,
        interval: float | None = None,
        stream: IO[str] | None = None,
        initial: int = 0,
    ) -> None: ...

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        enabled: bool = True,
        interval: float | None = None,
        stream: IO[str] | None = None,
        initial: int = 0,
    ) -> None:
        self._iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = int(initial)
        self._initial = int(initial)
        self.fields: dict[str, Any] = {}
        self._stream: Any = stream if stream is not None else sys.stderr
        on = enabled and is_enabled()
        if interval is not None:
            self.interval = float(interval)
        else:  # a bad RECAI_PROGRESS_INTERVAL is an error only where lines could be printed
            self.interval = default_interval() if on else DEFAULT_INTERVAL
        self._start = time.monotonic()
        self._last = self._start
        self._printed = False
        self._closed = False
        self._bar: Any = None
        if not on:
            self.mode = "off"
        elif _is_terminal(self._stream) or _in_notebook(self._stream):
            self.mode = "bar"
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                desc=_redacted(desc) or None,
                unit=unit,
                initial=initial,
                file=self._stream,
                leave=False,
                dynamic_ncols=True,
            )
        else:
            self.mode = "lines"

    # -- reporting --------------------------------------------------------------------------------
    def update(self, n: int = 1, **fields: Any) -> None:
        """Advance by ``n`` and set ``fields`` (``loss=0.41``, ``**{"NDCG@10": 0.1}``)."""
        self.n += n
        self.fields.update(fields)
        if self.mode == "bar":
            if fields:
                self._bar.set_postfix(self._postfix(), refresh=False)
            self._bar.update(n)
        elif self.mode == "lines":
            self._maybe_print()

    def set(self, **fields: Any) -> None:
        """Set ``fields`` without advancing."""
        self.update(0, **fields)

    def close(self, status: str = "done") -> None:
        """End the report. In a log, a last line (``status``) when the loop ran ``interval``."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "bar":
            self._bar.close()
        elif self.mode == "lines" and (
            self._printed or time.monotonic() - self._start >= self.interval
        ):
            self._write(self.line(status))

    def __iter__(self) -> Iterator[T]:
        if self._iterable is None:
            raise TypeError("Progress was created without an iterable: call update() instead")
        try:
            for item in self._iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        self.close("done" if kind is None else "stopped")

    # -- the plain line ---------------------------------------------------------------------------
    def line(self, status: str = "") -> str:
        """The plain progress line as it is now (without secrets)."""
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        count = count if self.unit == "it" else f"{self.unit} {count}"
        head = f"{self.desc}: " if self.desc else ""
        if status:
            head += f"{status}, "
        parts = [head + count]
        if self.fields:
            parts.append(" ".join(f"{k}={_value(v)}" for k, v in self.fields.items()))
        elapsed = time.monotonic() - self._start
        timing = f"elapsed {format_seconds(elapsed)}"
        done = self.n - self._initial
        if not status and self.total is not None and done > 0 and self.n < self.total:
            timing += f", eta {format_seconds(elapsed / done * (self.total - self.n))}"
        parts.append(timing)
        return _redacted(" | ".join(parts))

    def _postfix(self) -> dict[str, str]:
        return {_redacted(k): _redacted(_value(v)) for k, v in self.fields.items()}

    def _maybe_print(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(self.line())

    def _write(self, text: str) -> None:
        text = _redacted(text)
        self._printed = True
        with contextlib.suppress(ValueError, OSError):  # a closed or broken stream: stay quiet
            print(text, file=self._stream, flush=True)
