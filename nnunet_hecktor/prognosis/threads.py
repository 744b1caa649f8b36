"""Thread limits for the small-matrix numerics of the prognosis models."""

from __future__ import annotations


def small_matrix_threads(function):
    """Run ``function`` with BLAS/OpenMP limited to one thread.

    The prognosis models work on a few hundred rows by tens of columns; multi-threaded BLAS
    only adds synchronisation there (measured 14x slower logistic-regression fits with two
    threads on a busy 2-core machine).
    """
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return function(*args, **kwargs)

    return wrapper
