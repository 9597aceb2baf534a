"""Errors raised by the episode store.

Every failure a caller can cause (bad path, bad step, unknown episode or array) surfaces as a
:class:`StoreError` whose message names what is wrong and what would be valid, never as a raw zarr
or filesystem traceback.
"""

from __future__ import annotations


class StoreError(Exception):
    """Something is wrong with an episode store, an episode or the data given to it."""


class StoreKeyError(StoreError, KeyError):
    """An unknown episode id or a missing array: a :class:`StoreError` that is also a KeyError.

    Being a KeyError lets ``in``/``get``-style code and plain ``except KeyError`` keep working.
    """

    def __str__(self) -> str:  # KeyError would print the message repr'd inside quotes
        return Exception.__str__(self)
