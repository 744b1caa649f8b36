"""Process-parallel map over patients with a tqdm progress bar.

Workers are started with the ``spawn`` method: the caller may already hold threads (torch,
tqdm's monitor) and forking a threaded process can deadlock. Results keep the input order.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(function: Callable[[T], R], items: Sequence[T], num_processes: int = 1,
                 description: str = "", progress: bool = True) -> list[R]:
    """``[function(item) for item in items]``, over ``num_processes`` worker processes.

    ``function`` must be a top-level (picklable) function. The first exception raised by a
    worker is re-raised here (an :class:`~nnunet_hecktor.errors.InputDataError` keeps its message).
    """
    from tqdm import tqdm

    items = list(items)
    bar = tqdm(total=len(items), desc=description, disable=not progress, unit="case")
    try:
        if num_processes <= 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(function(item))
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(num_processes, len(items))) as pool:
            results = []
            for result in pool.imap(function, items, chunksize=1):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()

