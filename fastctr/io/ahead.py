"""Run an iterator ahead of its consumer in a background thread."""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from queue import Full, Queue
from typing import TypeVar

T = TypeVar("T")


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items, produced ahead by a background thread (at most ``depth`` waiting).

    Pays where producing an item releases the GIL (parsing, gzip inflation, the synthetic
    generator): it then overlaps the consumer's work. Memory grows by ``depth`` items at
    most. An error in the producer is raised here, after the items before it; when the
    consumer stops early, the thread stops too and closes ``items``.

    Examples
    --------
    >>> list(read_ahead(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Put ``item`` unless the consumer has gone; never blocks for ever on a full queue."""
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not offer(item):
                    return
            offer(done)  # the end marker too: the consumer may have stopped with the queue full
        except BaseException as error:  # handed to the consumer, raised there
            offer(error)
        finally:
            if hasattr(source, "close"):  # e.g. a generator holding an open file
                source.close()

    thread = threading.Thread(target=produce, name="fastctr-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer stopped early (break, dropped, an error): let the producer end
        while not queue.empty():  # free the items it read ahead
            queue.get_nowait()
        thread.join()
