"""data/prefetch.py: the one read-ahead thread of streaming training and batch predict."""

from __future__ import annotations

import threading
import time

import pytest

from cnncli.data.prefetch import Prefetch


def test_items_come_in_order_and_at_most_depth_ahead():
    made = []

    def items():
        for index in range(10):
            made.append(index)
            yield index

    with Prefetch(items(), depth=2) as reader:
        assert next(reader) == 0
        time.sleep(0.2)
        # one taken, two waiting in the queue, one made and waiting to be put
        assert len(made) <= 4
        assert list(reader) == list(range(1, 10))
    assert next(reader, None) is None  # finished: stays finished


def test_an_error_in_the_thread_is_raised_where_its_item_would_be():
    def items():
        yield 1
        raise ValueError("bad chunk")

    reader = Prefetch(items())
    assert next(reader) == 1
    with pytest.raises(ValueError, match="bad chunk"):
        next(reader)
    assert next(reader, None) is None
    reader.close()


def test_closing_early_stops_the_thread():
    def endless():
        index = 0
        while True:
            yield index
            index += 1

    reader = Prefetch(endless(), depth=1, name="cnncli-test-read")
    assert next(reader) == 0
    reader.close(timeout=5)
    assert not any(thread.name == "cnncli-test-read" for thread in threading.enumerate())
