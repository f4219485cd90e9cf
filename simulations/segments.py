"""Small numpy helpers on arrays cut into contiguous segments."""

from __future__ import annotations

import numpy as np


def sort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative int64 keys sorted, and the permutation that sorts them.

    When the keys leave room, each is packed with its index into one int64 and the values are
    sorted, which is about twice as fast as an argsort; the order among equal keys is by index.
    """
    n = keys.shape[0]
    bits = max(1, int(n - 1).bit_length())
    if n == 0 or int(keys.max()) >= 1 << (63 - bits):
        order = np.argsort(keys, kind="stable")
        return keys[order], order
    packed = np.sort((keys << bits) | np.arange(n, dtype=np.int64))
    return packed >> bits, packed & ((1 << bits) - 1)


def merge_sorted(
    keys: np.ndarray, weights: np.ndarray, *columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Sort by key and sum the weights of equal keys; the columns keep one value per key."""
    keys, order = sort_keys(keys)
    weights = weights[order]
    sorted_columns = [column[order] for column in columns]
    starts = segment_starts(np.concatenate([[True], keys[1:] != keys[:-1]]))
    if starts.shape[0] != keys.shape[0]:
        weights = np.add.reduceat(weights, starts)
        keys = keys[starts]
        sorted_columns = [column[starts] for column in sorted_columns]
    return keys, weights, sorted_columns


def segment_starts(new_segment: np.ndarray) -> np.ndarray:
    """Indices where a segment starts, given a boolean flag per element (element 0 always starts one)."""
    flags = new_segment.copy()
    if flags.shape[0]:
        flags[0] = True
    return np.flatnonzero(flags)


def segmented_suffix_sum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """For each element, the sum of it and the elements after it in its segment.

    ``segment`` is a non-decreasing segment id per element. The sum is built by doubling
    (log₂ of the longest segment passes), so each result is a sum of that segment's own
    values only: a small segment is never computed as the difference of two large totals.
    """
    out = values.astype(np.float64, copy=True)
    n = out.shape[0]
    shift = 1
    while shift < n:
        same = segment[:-shift] == segment[shift:]
        if not same.any():
            break
        out[:-shift] += np.where(same, out[shift:], 0.0)
        shift *= 2
    return out


def expand_ranges(lo: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the ranges lo[g] … lo[g] + count[g] − 1; return (range id, value) per element."""
    total = int(count.sum())
    owner = np.repeat(np.arange(count.shape[0], dtype=np.int64), count)
    first = np.cumsum(count) - count
    value = lo[owner] + (np.arange(total, dtype=np.int64) - first[owner])
    return owner, value


def sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) and the sum of the values of each."""
    if keys.shape[0] == 0:
        return keys.copy(), values.astype(np.float64, copy=True)
    sorted_keys, order = sort_keys(keys)
    starts = segment_starts(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    return sorted_keys[starts], np.add.reduceat(values[order], starts)
