"""Code that the type gate (issue 16 item 7) made rewrite behaves as before."""

from __future__ import annotations

import io

import numpy as np
import pytest

from recai.data import Catalog
from recai.errors import DataError
from recai.progress import Progress


def test_duplicate_catalog_ids_are_named_in_order_at_most_five() -> None:
    # the duplicate scan was a comprehension over set.add(); it lists each repeat, first five
    ids = ["a", "b", "a", "c", "b", "a", "d", "d", "e", "e", "f", "f"]
    with pytest.raises(DataError) as info:
        Catalog(ids=np.array(ids, dtype=object), titles=np.array(ids, dtype=object))
    assert "['a', 'b', 'a', 'd', 'e'] appear more than once" in str(info.value)


def test_progress_without_an_iterable_is_a_context_manager() -> None:
    # Progress.__init__ has overloads for type checkers; both forms still run the same code
    log = io.StringIO()
    with Progress(total=2, desc="t", unit="epoch", interval=0, stream=log) as bar:
        bar.update(loss=1.0)
        bar.update(loss=0.5)
    assert "t: done, epoch 2/2" in log.getvalue()
    assert list(Progress([3, 4], enabled=False)) == [3, 4]
