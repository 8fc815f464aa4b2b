"""Shared by the kernel's tests: every test starts without registered secrets.

:func:`recai.run` registers the values a recipe took from the environment in a process-wide
registry (:mod:`recai.secrets`); without this reset a value registered by one test would be
redacted from the output of the next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recai import secrets


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    secrets.forget_secrets()
    yield
    secrets.forget_secrets()
