"""Every way a source assigns its records to train / val / test, in one place (scikit-learn's
splitters underneath): fractions stratified by label where the labels allow it, a carved val
split, splits that keep groups (speakers) apart, and splits the dataset gives by file name.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from crnn.config import SplitFractions
from crnn.errors import DataError

SPLITS = ("train", "val", "test")


def split_indices(
    labels: np.ndarray, fractions: SplitFractions, seed: int
) -> dict[str, np.ndarray]:
    """Indices per split (sorted, disjoint, complete) in the given fractions: stratified by
    ``labels`` when every label is common enough, else unstratified (a class with one record,
    or a numeric target whose values do not repeat, cannot be stratified)."""
    if len(labels) < len(SPLITS):
        raise DataError(
            f"{len(labels)} usable records cannot fill train, val and test; add data or give "
            "the split (a split column or folders)"
        )
    idx = np.arange(len(labels))
    val_share = fractions.val / (fractions.train + fractions.val)
    try:
        rest, test = train_test_split(
            idx, test_size=fractions.test, stratify=labels, random_state=seed
        )
        train, val = train_test_split(
            rest, test_size=val_share, stratify=labels[rest], random_state=seed + 1
        )
    except ValueError:  # too few of some label to stratify
        rest, test = train_test_split(idx, test_size=fractions.test, random_state=seed)
        train, val = train_test_split(rest, test_size=val_share, random_state=seed + 1)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def split_train_val(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Split id (0 train, 1 val) per record; stratified by label when there are enough records."""
    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    n_val = int(np.ceil(val_fraction * len(labels)))
    enough = len(counts) and counts.min() >= 2 and min(n_val, len(labels) - n_val) >= len(counts)
    stratify = labels if enough else None
    _, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=stratify)
    assign = np.zeros(len(labels), dtype=np.int8)
    assign[val] = 1
    return assign


def group_split(groups: np.ndarray, fractions: SplitFractions, seed: int) -> dict[str, np.ndarray]:
    """Indices per split such that no group appears in two splits (scikit-learn's splitter)."""
    idx = np.arange(len(groups))
    if len(np.unique(groups)) < 3:
        raise DataError(f"a group-aware split needs at least 3 groups, found {len(set(groups))}")
    outer = GroupShuffleSplit(n_splits=1, test_size=fractions.test, random_state=seed)
    rest, test = next(outer.split(idx, groups=groups))
    inner = GroupShuffleSplit(
        n_splits=1, test_size=fractions.val / (fractions.train + fractions.val), random_state=seed
    )
    train, val = next(inner.split(rest, groups=groups[rest]))
    return {"train": rest[train], "val": rest[val], "test": test}


def split_of(value: str, test: list[str], val: list[str]) -> str:
    """The split a file-name value falls in under a split rule (values or ranges "lo-hi")."""

    def matches(item: str) -> bool:
        lo, dash, hi = item.partition("-")
        if dash and lo.strip().isdigit() and hi.strip().isdigit() and value.isdigit():
            return int(lo) <= int(value) <= int(hi)
        return value == item

    if any(matches(v) for v in test):
        return "test"
    return "val" if any(matches(v) for v in val) else "train"


def kept_split(
    given: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    val_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Indices per split as the dataset gives them (``given``: 0 train, 1 val, 2 test); without
    a given val, ``val_fraction`` of train becomes val (by group when there are groups, else
    stratified by label)."""
    if (given == 1).any():
        if groups is not None:
            raise DataError(
                "data.group and a given train / val / test split: the given split is kept, so "
                "no split is made by group; set data.group: null"
            )
        return {s: np.flatnonzero(given == k) for k, s in enumerate(SPLITS)}
    train = np.flatnonzero(given == 0)
    if groups is not None:
        carve = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        keep, val = next(carve.split(train, groups=groups[train]))
        kept, carved = train[keep], train[val]
    else:
        assign = split_train_val(labels[train], val_fraction, seed)
        kept, carved = train[assign == 0], train[assign == 1]
    return {"train": np.sort(kept), "val": np.sort(carved), "test": np.flatnonzero(given == 2)}
