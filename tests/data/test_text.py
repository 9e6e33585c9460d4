"""Text tables: tokenizer, every file format written by its real writer, encodings, quarantine,
token augmentation and a small sentiment task learned end to end."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import crnn.models.text  # noqa: F401  registers text_crnn
from crnn.config import AugmentationConfig, ModelConfig, PreprocessingConfig, TextTableData
from crnn.data.augment import AUGMENTERS, generator_for
from crnn.data.catalog import open_source
from crnn.data.loader import load_manifest, load_split
from crnn.data.preprocess import preprocess
from crnn.data.sources import SPLITS
from crnn.data.text import Tokenizer  # also registers text_table and the text augmenter
from crnn.errors import DataError
from crnn.types.records import Chunk

LENIENT = PreprocessingConfig(
    normalization="none", augmentation={"copies": 0}, max_quarantine_fraction=1.0
)


def read_all(cfg: TextTableData, chunk_rows: int = 1000) -> dict[str, list[Chunk]]:
    source = open_source(cfg)
    return {s: list(source.chunks(s, chunk_rows)) for s in SPLITS}


# ------------------------------------------------------------------------------------ tokenizer


def test_vocabulary_ids_frequency_order_and_oov() -> None:
    tok = Tokenizer(max_length=6).fit(["b a a", "c b a", "d!"])
    # a x3, b x2, then the singletons alphabetically ("!" sorts before letters)
    assert tok.vocab_ == {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3, "!": 4, "c": 5, "d": 6}
    np.testing.assert_array_equal(tok.transform(["A zebra b!"]), [[2, 1, 3, 4, 0, 0]])
    assert tok.transform(["a"]).dtype == np.float32
    rare = Tokenizer(min_count=2).fit(["b a a", "c b a", "d!"])
    assert rare.vocabulary == ["<pad>", "<unk>", "a", "b"]
    assert Tokenizer(max_vocab=1).fit(["b a a", "c b a"]).vocabulary == ["<pad>", "<unk>", "a"]
    with pytest.raises(RuntimeError, match="not fitted"):
        Tokenizer().transform(["a"])


def test_truncation_padding_char_and_case() -> None:
    tok = Tokenizer(max_length=3).fit(["one two three four"])
    ids = tok.transform(["one two three four", "four", ""])
    assert ids.shape == (3, 3)
    assert tok.decode(ids[0]) == ["one", "two", "three"]  # truncated to max_length
    np.testing.assert_array_equal(ids[1], [tok.vocab_["four"], 0, 0])  # padded at the end
    np.testing.assert_array_equal(ids[2], [0, 0, 0])
    chars = Tokenizer("char", max_length=8).fit(["Ab a"])
    assert chars.tokenize("Ab a") == ["a", "b", " ", "a"]
    assert chars.vocabulary == ["<pad>", "<unk>", "a", " ", "b"]
    cased = Tokenizer("word", lowercase=False).fit(["Ab ab"])
    assert cased.tokenize("Ab, ab") == ["Ab", ",", "ab"] and "Ab" in cased.vocab_


def test_features_round_trip_through_json() -> None:
    texts = ["Great food, really!", "awful service...", "fine"]
    tok = Tokenizer("word", max_length=5, min_count=1).fit(texts)
    features = json.loads(json.dumps(tok.to_features()))
    assert features["vocab_size"] == len(features["vocabulary"]) == tok.vocab_size
    again = Tokenizer.from_features(features)
    np.testing.assert_array_equal(
        again.transform([*texts, "new words"]), tok.transform([*texts, "new words"])
    )
    assert (again.kind, again.lowercase, again.max_length) == ("word", True, 5)
    with pytest.raises(ValueError, match="vocabulary"):
        Tokenizer.from_features({**features, "vocabulary": features["vocabulary"][1:]})


# -------------------------------------------------------------------------------------- formats

TEXTS = [
    'he said "hi", then left',
    "two\nlines",
    "café crème",
    "plain words",
    "punctuation!?",
    "tabs\tinside",
]


def sample_table(n: int = 30) -> pd.DataFrame:
    texts = [f"{TEXTS[i % len(TEXTS)]} number {i}" for i in range(n)]
    return pd.DataFrame({"text": texts, "label": [("neg", "pos", "meh")[i % 3] for i in range(n)]})


def write_table(folder: Path, fmt: str, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(folder / "reviews.csv", index=False)
        (folder / "README.txt").write_text("not data\n")  # auto must still pick the table
        return folder
    if fmt == "tsv":
        frame.to_csv(folder / "reviews.tsv", sep="\t", index=False)
        return folder / "reviews.tsv"
    if fmt == "jsonl":
        frame.to_json(folder / "reviews.jsonl", orient="records", lines=True)
        return folder / "reviews.jsonl"
    if fmt == "parquet":
        frame = frame.assign(label=frame["label"].map({"neg": 0, "pos": 1, "meh": 2}))
        frame.to_parquet(folder / "reviews.parquet", index=False)
        return folder / "reviews.parquet"
    for label, group in frame.groupby("label"):  # lines: CLASS.txt, one text per line
        lines = [t.replace("\n", " ") for t in group["text"]]
        (folder / f"{label}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet", "lines"])
def test_each_format_round_trips(tmp_path: Path, fmt: str) -> None:
    frame = sample_table()
    path = write_table(tmp_path / fmt, fmt, frame)
    cfg = TextTableData(path=str(path), max_length=12)
    source = open_source(cfg)
    info = source.info()
    chunks = {s: list(source.chunks(s, 4)) for s in SPLITS}
    assert all(len(c) <= 4 for cs in chunks.values() for c in cs)
    sizes = {s: sum(len(c) for c in cs) for s, cs in chunks.items()}
    assert sum(sizes.values()) == 30 and sizes == {"train": 18, "val": 6, "test": 6}
    assert not any(c.quarantined for cs in chunks.values() for c in cs)
    classes = ("0", "1", "2") if fmt == "parquet" else ("meh", "neg", "pos")
    assert info.target.classes == classes and info.input_shape == (12,)
    assert info.modality == "text" and info.features["vocab_size"] == source.tokenizer.vocab_size
    tok = Tokenizer.from_features(info.features)
    seen: set[str] = set()
    for chunk in (c for cs in chunks.values() for c in cs):
        assert chunk.inputs.shape == (len(chunk), 12) and chunk.inputs.dtype == np.float32
        for sample_id, ids, label in zip(chunk.sample_ids, chunk.inputs, chunk.labels, strict=True):
            seen.add(sample_id)
            stem, number = sample_id.rsplit("-", 1)
            if fmt == "lines":  # CLASS-line: the n-th line of that class's file
                original = frame[frame.label == stem]["text"].iloc[int(number) - 1]
                original, want = original.replace("\n", " "), stem
            else:
                original, want = frame["text"][int(number)], frame["label"][int(number)]
                assert stem == "reviews"
            if fmt == "parquet":
                want = str({"neg": 0, "pos": 1, "meh": 2}[want])
            assert info.target.classes[label] == want
            tokens = tok.tokenize(original)[:12]
            assert tok.decode(ids) == [t if t in tok.vocab_ else "<unk>" for t in tokens]
    assert len(seen) == 30  # every record once, in exactly one split
    train_tokens = {t for c in chunks["train"] for row in c.inputs for t in tok.decode(row)}
    assert "<unk>" not in train_tokens  # the tokenizer was fit on these rows


def test_format_and_path_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.path is not set"):
        open_source(TextTableData())
    with pytest.raises(DataError, match="does not exist"):
        open_source(TextTableData(path=str(tmp_path / "nope.csv")))
    sample_table().to_csv(tmp_path / "a.csv", index=False)
    sample_table().to_json(tmp_path / "b.jsonl", orient="records", lines=True)
    with pytest.raises(DataError, match="several formats"):
        open_source(TextTableData(path=str(tmp_path)))
    assert open_source(TextTableData(path=str(tmp_path), format="jsonl")).format == "jsonl"
    with pytest.raises(DataError, match="no column 'body'"):
        open_source(TextTableData(path=str(tmp_path / "a.csv"), text_column="body"))


def test_tiny_tables_split_and_degenerate_ones_fail_in_one_line(tmp_path: Path) -> None:
    # one "c" record cannot be stratified: the split falls back to plain fractions, none lost
    frame = pd.DataFrame({"text": [f"t {i}" for i in range(7)], "label": list("aaabbbc")})
    frame.to_csv(tmp_path / "tiny.csv", index=False)
    chunks = read_all(TextTableData(path=str(tmp_path / "tiny.csv")))
    ids = [i for cs in chunks.values() for c in cs for i in c.sample_ids]
    assert sorted(ids) == [f"tiny-{i:07d}" for i in range(7)]
    assert all(chunks[s] for s in SPLITS)
    frame.assign(label="a").to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(DataError, match="two or more classes"):
        open_source(TextTableData(path=str(tmp_path / "one.csv")))
    frame.assign(part="test").to_csv(tmp_path / "notrain.csv", index=False)
    with pytest.raises(DataError, match="train split"):
        open_source(TextTableData(path=str(tmp_path / "notrain.csv"), split_column="part"))
    frame.iloc[[0, 3]].to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(DataError, match="cannot fill train, val and test"):
        open_source(TextTableData(path=str(tmp_path / "two.csv")))


# ------------------------------------------------------------------------------------- encoding

LATIN = ["café au lait", "crème brûlée", "naïve"]


@pytest.mark.parametrize("fmt", ["csv", "lines"])
def test_latin1_reads_with_its_encoding_and_quarantines_as_utf8(tmp_path: Path, fmt: str) -> None:
    texts = LATIN + [f"plain text {i}" for i in range(12)]
    if fmt == "csv":
        labels = ["a", "b", "c"] * 5
        lines = ["text,label"] + [f"{t},{lab}" for t, lab in zip(texts, labels, strict=True)]
        path = tmp_path / "menu.csv"
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    else:
        path = tmp_path / "menu"
        path.mkdir()
        for k, cls in enumerate("abc"):
            (path / f"{cls}.txt").write_bytes("\n".join(texts[k::3]).encode("latin-1"))
    good = read_all(TextTableData(path=str(path), encoding="latin-1"))
    read = [t for cs in good.values() for c in cs for t in c.texts or []]
    assert sorted(read) == sorted(texts)  # é decoded, no \r left from the line endings
    assert not any(c.quarantined for cs in good.values() for c in cs)

    as_utf8 = read_all(TextTableData(path=str(path), encoding="utf-8"))
    bad = [q for cs in as_utf8.values() for c in cs for q in c.quarantined]
    assert len(bad) == 3 and {q.reason for q in bad} == {"undecodable_text"}
    assert all(not c.quarantined for s in ("val", "test") for c in as_utf8[s])  # reported once
    # the three accented texts: rows 0-2 of the table, or line 1 of a.txt, b.txt and c.txt
    ids = [f"menu-{i:07d}" for i in range(3)] if fmt == "csv" else [f"{c}-0000001" for c in "abc"]
    assert sorted(q.sample_id for q in bad) == ids
    assert "b'\\xe9'" in next(q.detail for q in bad if q.sample_id == ids[0])  # café's é
    kept = sum(len(c) for cs in as_utf8.values() for c in cs)
    assert kept + len(bad) == len(texts)


# ----------------------------------------------------------------------------------- quarantine


def test_quarantine_reconciles_and_shards_hold_the_tokenizer_ids(tmp_path: Path) -> None:
    rows = [
        {"text": f"good {w} text {i}", "label": ("x", "y")[i % 2], "part": s}
        for i, (w, s) in enumerate(
            [("train", "train")] * 12 + [("val", "val")] * 4 + [("test", " Test ")] * 4
        )
    ]
    rows += [
        {"text": "", "label": "x", "part": "train"},
        {"text": "   ", "label": "y", "part": "test"},
        {"text": "no label here", "label": None, "part": "train"},
        {"text": "odd split", "label": "x", "part": "holdout"},
        {"text": "no split", "label": "y", "part": None},
    ]
    path = tmp_path / "table.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("one,too,many,fields\n")
    cfg = TextTableData(path=str(path), split_column="part", max_length=6)
    shards = preprocess(cfg, LENIENT, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    q = manifest.quarantine
    assert q.by_reason == {
        "bad_split_value": 2,
        "empty_text": 2,
        "malformed_row": 1,
        "missing_label": 1,
    }
    written = sum(c["original"] for c in manifest.splits.values())
    assert written == 20 and written + q.total == len(rows) + 1 == q.input_records
    assert {s: c["original"] for s, c in manifest.splits.items()} == {
        "train": 12,
        "val": 4,
        "test": 4,
    }
    table = pd.read_parquet(shards.root / q.file)
    assert set(table.sample_id) == {f"table-{i:07d}" for i in range(20, 26)}
    assert table.set_index("sample_id").loc["table-0000021", "split"] == "test"
    tok = Tokenizer.from_features(manifest.features)
    for split, first, texts in (("train", 0, rows[:12]), ("test", 16, rows[16:20])):
        data = load_split(shards.manifest_path, split)  # train rows are shuffled: match by id
        order = np.argsort(data.sample_ids)
        assert [data.sample_ids[i] for i in order] == [
            f"table-{i:07d}" for i in range(first, first + len(texts))
        ]
        want = tok.transform([r["text"] for r in texts])
        np.testing.assert_array_equal(data.inputs.numpy()[order], want)
    assert manifest.input_shape == [6] and manifest.source["modality"] == "text"


def test_tokenizer_is_fit_on_train_only(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": [f"common words {i}" for i in range(8)] + ["common zebra", "zebra words"],
            "label": ["a", "b"] * 5,
            "split": ["train"] * 6 + ["val", "val", "test", "test"],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    source = open_source(TextTableData(path=str(tmp_path / "t.parquet"), split_column="split"))
    assert "zebra" not in source.tokenizer.vocab_ and "common" in source.tokenizer.vocab_
    test = next(source.chunks("test", 10))
    common = source.tokenizer.vocab_["common"]
    np.testing.assert_array_equal(
        test.inputs[:, :2], [[common, 1], [1, source.tokenizer.vocab_["words"]]]
    )


# ----------------------------------------------------------------------------------- augmenting


def token_rows() -> np.ndarray:
    x = np.zeros((6, 10), np.float32)
    x[0, :10] = np.arange(2, 12)
    x[1, :4] = [5, 6, 7, 8]
    x[2, :1] = [9]
    x[4, :7] = [3, 3, 4, 5, 6, 7, 8]
    x[5, :2] = [2, 4]
    return x  # row 3 is all padding


def _prefix(row: np.ndarray) -> bool:
    """Non-pad tokens first, then only padding."""
    n = int((row != 0).sum())
    return bool((row[:n] != 0).all() and (row[n:] == 0).all())


def _is_subsequence(small: list[float], big: list[float]) -> bool:
    it = iter(big)
    return all(any(b == s for b in it) for s in small)


def test_token_augmentation_is_deterministic_and_leaves_the_input() -> None:
    x = token_rows()
    before = x.copy()
    cfg = AugmentationConfig(token_dropout=0.3, token_swaps=2)
    augment = AUGMENTERS.get("text")
    a, b = augment(x, cfg, generator_for(0, 1)), augment(x, cfg, generator_for(0, 1))
    c = augment(x, cfg, generator_for(1, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(x, before)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(augment(x, AugmentationConfig(), generator_for(0)), x)


def test_token_dropout_keeps_order_length_and_one_token() -> None:
    x = token_rows()
    out = AUGMENTERS.get("text")(x, AugmentationConfig(token_dropout=0.5), generator_for(3))
    assert out.shape == x.shape
    for row_in, row_out in zip(x, out, strict=True):
        assert _prefix(row_out)
        kept = [v for v in row_out if v]
        assert _is_subsequence(kept, [v for v in row_in if v])
        assert len(kept) >= (1 if row_in.any() else 0)
    assert (out != 0).sum() < (x != 0).sum()  # something was dropped
    heavy = AUGMENTERS.get("text")(x, AugmentationConfig(token_dropout=0.99), generator_for(4))
    assert ((heavy != 0).sum(axis=1) == [1, 1, 1, 0, 1, 1]).all()


def test_token_swaps_keep_the_tokens_and_the_padding() -> None:
    x = token_rows()
    out = AUGMENTERS.get("text")(x, AugmentationConfig(token_swaps=3), generator_for(5))
    for row_in, row_out in zip(x, out, strict=True):
        assert Counter(row_in.tolist()) == Counter(row_out.tolist())
        np.testing.assert_array_equal(row_in == 0, row_out == 0)
    np.testing.assert_array_equal(out[2:4], x[2:4])  # one token or none: nothing to swap
    assert not np.array_equal(out[0], x[0])
    one = AUGMENTERS.get("text")(x, AugmentationConfig(token_swaps=1), generator_for(6))
    assert all((r_in != r_out).sum() in (0, 2) for r_in, r_out in zip(x, one, strict=True))


# ----------------------------------------------------------------------------------------- model


def test_text_crnn_shapes_and_unknown_ids() -> None:
    from crnn.models import create_model
    from crnn.models.text import TextCRNN

    torch.manual_seed(0)
    model = create_model("text_crnn", (12,), 3, vocab_size=20, embedding_dim=8, rnn_hidden=8)
    assert isinstance(model, TextCRNN) and model.seq_len == 3
    x = torch.tensor([[2.0, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0], [99.0, -4] + [0.0] * 10])
    model.eval()
    out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    unk = torch.tensor([[1.0, 1] + [0.0] * 10])  # out-of-range ids read as <unk>
    torch.testing.assert_close(model(x[1:]), model(unk))
    ctc = create_model("text_crnn", (12,), 3, head="ctc", vocab_size=20, rnn_hidden=8)
    assert ctc(x).shape == (2, ctc.seq_len, 3)
    with pytest.raises(ValueError, match="too short"):
        create_model("text_crnn", (3,), 2, pool=((1, 2), (1, 2)), conv_channels=(4, 4))


# ------------------------------------------------------------------------------------ end to end

POSITIVE = ["good", "great", "fine"]
NEGATIVE = ["bad", "awful", "poor"]
FILLER = ["the", "movie", "was", "really", "food", "service", "quite", "very", "and", "plot"]


def sentiment_rows(n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        label = ("pos", "neg")[i % 2]
        words = list(rng.choice(FILLER, size=int(rng.integers(2, 6))))
        for _ in range(int(rng.integers(1, 3))):
            mood = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
            words.insert(int(rng.integers(0, len(words) + 1)), str(mood))
        rows.append({"text": " ".join(words).capitalize() + ".", "label": label})
    return rows


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine they can stall for seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sentiment_task_learns_end_to_end(tmp_path: Path, one_thread: None) -> None:
    from crnn.config import TrainingConfig
    from crnn.engine.train import train_on_shards
    from crnn.inference.predictor import Predictor
    from crnn.models import model_kwargs

    path = tmp_path / "reviews.jsonl"
    pd.DataFrame(sentiment_rows(120, np.random.default_rng(0))).to_json(
        path, orient="records", lines=True
    )
    prep = PreprocessingConfig(
        normalization="none",
        augmentation={"copies": 1, "token_dropout": 0.1, "token_swaps": 1},
    )
    shards = preprocess(TextTableData(path=str(path), max_length=16), prep, tmp_path / "shards")
    manifest = load_manifest(shards.manifest_path)
    assert manifest.splits["train"] == {"rows": 144, "original": 72, "augmented": 72}
    cfg = ModelConfig(
        architecture="text_crnn",
        head="classification",
        conv_channels=(16, 16),
        pool=((1, 2), (1, 1)),
        rnn_hidden=16,
        embedding_dim=16,
    )
    kwargs = model_kwargs(cfg, manifest.features)
    assert (
        kwargs["vocab_size"]
        == manifest.features["vocab_size"]
        == len(manifest.features["vocabulary"])
    )
    training = TrainingConfig(
        epochs=15,
        batch_size=16,
        lr=0.01,
        device="cpu",
        schedule="constant",
        early_stopping={"monitor": "val_accuracy", "mode": "max", "patience": 15},
    )
    result = train_on_shards(shards.manifest_path, cfg, training, tmp_path / "ckpt")
    test = load_split(shards.manifest_path, "test")
    assert result.epochs_run == 15 and result.history[-1]["train_loss"] < 0.1
    # the last weights: val (24 texts) reaches 1.0 early, so "best" can be an undertrained epoch
    predictor = Predictor.from_checkpoint(result.last_checkpoint, device="cpu")
    predicted = predictor.predict_normalized(test.inputs).outputs
    assert test.labels is not None
    truth = [manifest.target.classes[i] for i in test.labels.tolist()]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    assert len(truth) == 24 and accuracy >= 0.9


def test_max_mean_pooling_reads_real_tokens_only_and_old_checkpoints_still_build() -> None:
    from crnn.models import create_model

    torch.manual_seed(0)
    model = create_model(
        "text_crnn",
        (8,),
        2,
        vocab_size=20,
        embedding_dim=8,
        rnn_hidden=8,
        pooling="max_mean",
        embedding_dropout=0.2,
        pool=((1, 1),),
        conv_channels=(4,),
        bidirectional=False,
    ).eval()
    short = torch.tensor([[5.0, 6.0, 7.0, 0, 0, 0, 0, 0]])
    # one conv and a forward RNN: steps 0-2 see no padding (a <pad> embeds as the conv's own
    # zero padding), so only the pooling could tell the padded text from the bare one
    torch.testing.assert_close(model(short), model(short[:, :3]))
    assert model(torch.zeros(1, 8)).isfinite().all()  # an all-padding row still scores
    old = create_model("text_crnn", (8,), 2, vocab_size=20, embedding_dim=8, rnn_hidden=8)
    assert old.pooled is None and old(short).shape == (1, 2)  # kwargs of old checkpoints: mean
