"""One background thread that reads ahead: the next chunk is parsed while this one is used.

Training from chunks and predicting a file both read, parse and transform the next chunk in a
thread while the main thread trains or infers on the current one, so both cores stay busy and
memory holds at most ``depth`` chunks ahead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
_DONE = object()


class Prefetch(Generic[Item]):
    """Iterates ``items`` in a background thread, at most ``depth`` items ahead.

    An exception in the thread is raised by the ``next`` that would have returned its item.
    ``close`` (or leaving a ``with`` block) stops the thread, which never blocks for good on a
    consumer that has gone.

    Args:
        items: what to read ahead, typically a generator of chunks.
        depth: items held ready at most.
        name: the thread's name.
    """

    def __init__(self, items: Iterable[Item], depth: int = 2, name: str = "cnncli-read") -> None:
        self._slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _produce(self, items: Iterable[Item]) -> None:
        try:
            for item in items:
                if not self._offer(item):
                    return
            self._offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            self._offer(exc)

    def _offer(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Item]:
        return self

    def __next__(self) -> Item:
        if self._done:
            raise StopIteration
        item = self._slots.get()
        if item is _DONE:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        self._thread.join(timeout=timeout)

    def __enter__(self) -> Prefetch[Item]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
