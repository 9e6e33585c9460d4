"""The transcriptions of line images: from ``NAME.gt.txt`` files beside the images, or from a
``labels_csv`` (``path,text[,split][,group]``). One table of usable lines, and a quarantine record
for every line or file that cannot be one, with its reason: counted, never dropped."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from crnn.data.files import IMAGE_SUFFIXES, set_apart, visible_under
from crnn.data.splits import SPLITS
from crnn.errors import DataError
from crnn.types.records import Quarantined

if TYPE_CHECKING:
    from crnn.config import LineImagesData

GT_SUFFIX = ".gt.txt"


def nfc(text: str) -> str:
    """Composed characters (NFC): an "é" typed as e + accent is the one character "é"."""
    return unicodedata.normalize("NFC", text)


def normalize_text(text: str) -> str:
    """A transcription as the model learns it: NFC, surrounding whitespace (the newline) off."""
    return nfc(text).strip()


def label_table(root: Path, cfg: LineImagesData) -> tuple[pd.DataFrame, list[Quarantined]]:
    """(path, text[, split][, group]) of every usable line under ``root``, paths relative to it;
    and the records set aside."""
    listed = [p for p in visible_under(root, cfg.follow_symlinks) if p.is_file()]
    files, set_aside = set_apart(listed, root, "train", cfg.follow_symlinks)
    images = {p.relative_to(root).as_posix() for p in files if p.suffix.lower() in IMAGE_SUFFIXES}
    if cfg.labels_csv:
        table, rejected = _csv_table(root, cfg, images)
    else:
        table, rejected = _sidecar_table(root, files, images)
    rejected = set_aside + rejected
    table = _given_split(root, cfg, table, rejected)
    if cfg.group:
        table = _groups(cfg.group, table, root)
    return table.reset_index(drop=True), rejected


def _sidecar_table(
    root: Path, files: list[Path], images: set[str]
) -> tuple[pd.DataFrame, list[Quarantined]]:
    rows, rejected = [], []
    for rel in sorted(images):
        gt = root / (rel[: -len(Path(rel).suffix)] + GT_SUFFIX)
        text, problem = _read_gt(gt)
        if problem is None:
            rows.append({"path": rel, "text": text})
        else:
            rejected.append(Quarantined(rel, "train", str(root / rel), *problem))
    stems = {rel[: -len(Path(rel).suffix)] for rel in images}
    for p in files:
        rel = p.relative_to(root).as_posix()
        if rel.endswith(GT_SUFFIX) and rel[: -len(GT_SUFFIX)] not in stems:
            detail = f"no image ({', '.join(sorted(IMAGE_SUFFIXES))}) with this name beside it"
            rejected.append(Quarantined(rel, "train", str(p), "missing_image", detail))
    return pd.DataFrame(rows, columns=["path", "text"]), rejected


def sidecar_text(image: Path) -> str | None:
    """The transcription beside ``image`` (``NAME.gt.txt``) when there is a usable one: scoring
    reports its metrics against it."""
    text, problem = _read_gt(image.with_name(image.name[: -len(image.suffix)] + GT_SUFFIX))
    return text if problem is None else None


def _read_gt(gt: Path) -> tuple[str, tuple[str, str] | None]:
    """A transcription file's text, or (reason, detail) why it gives none."""
    if not gt.is_file():
        return "", ("missing_label", f"no {gt.name} beside it")
    try:
        raw = gt.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return "", ("unreadable_text", f"{gt.name} is not UTF-8 ({exc.reason} at byte {exc.start})")
    return _check_text(raw, gt.name)


def _check_text(raw: str, where: str) -> tuple[str, tuple[str, str] | None]:
    text = normalize_text(raw)
    if not text:
        return "", ("empty_text", f"{where} holds no text")
    if "\n" in text or "\r" in text:
        return "", ("multi_line_text", f"{where} holds more than one line")
    return text, None


def _csv_table(
    root: Path, cfg: LineImagesData, images: set[str]
) -> tuple[pd.DataFrame, list[Quarantined]]:
    csv = root / str(cfg.labels_csv)
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{csv}: unreadable labels_csv ({exc}); fix or replace it") from None
    lacking = [c for c in ("path", "text") if c not in table]
    if lacking:
        raise DataError(
            f"{csv}: no column {lacking[0]!r} (it has {', '.join(map(str, table.columns[:8]))}); "
            "labels_csv needs the columns path,text[,split][,group]"
        )
    resolved, keep, rejected, listed = root.resolve(), [], [], set()
    for row, (path, raw) in enumerate(zip(table["path"], table["text"], strict=True)):
        where = f"{csv.name}:{row + 2}"  # the CSV's own line number (after its header)
        found = (root / path.strip()).resolve()
        text, problem = "", None
        if not found.is_relative_to(resolved):
            problem = ("path_outside_data", f"{where}: {path!r} is outside data.path")
        elif found.relative_to(resolved).as_posix() not in images:
            problem = ("missing_file", f"{where}: {path!r} is not an image under data.path")
        else:
            text, problem = _check_text(raw, where)
        if problem is None:
            rel = found.relative_to(resolved).as_posix()
            listed.add(rel)
            keep.append(row)
            table.loc[row, ["path", "text"]] = [rel, text]
        else:
            rejected.append(Quarantined(path, "train", str(csv), *problem))
    for rel in sorted(images - listed):
        detail = f"not listed in {csv.name}"
        rejected.append(Quarantined(rel, "train", str(root / rel), "missing_label", detail))
    return table.iloc[keep], rejected


def _given_split(
    root: Path, cfg: LineImagesData, table: pd.DataFrame, rejected: list[Quarantined]
) -> pd.DataFrame:
    """The table with a ``split`` column where the data gives one (a CSV column, or train/ val/
    test/ sub-folders); lines outside the given split are set aside."""
    if "split" in table:
        named = table["split"].str.strip().str.lower()
        where = f"{cfg.labels_csv}: column 'split'"
    elif (root / "train").is_dir():
        named = table["path"].str.split("/").str[0]
        where = f"{root}: sub-folder"
    else:
        return table
    outside = ~named.isin(SPLITS)
    for rel, value in zip(table["path"][outside], named[outside], strict=True):
        detail = f"{where} {value!r} is none of {', '.join(SPLITS)}"
        rejected.append(Quarantined(rel, "train", str(root / rel), "no_split", detail))
    return table[~outside].assign(split=named[~outside])


def _groups(group: str, table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The table with a ``group`` column: the image's folder (``folder``) or a CSV column."""
    if group == "folder":
        folders = table["path"].map(lambda p: Path(p).parent.as_posix())
        return table.assign(group=folders)
    if group not in table:
        raise DataError(
            f"{root}: data.group {group!r} is not a labels_csv column; name one, or `folder`"
        )
    return table.assign(group=table[group])
