import pytest
import torch

from crnn.config import ModelConfig
from crnn.models import (
    ARCHITECTURES,
    create_model,
    ctc_greedy_decode,
    ctc_greedy_strings,
    model_kwargs,
)

SHAPE = (1, 32, 128)


@pytest.mark.parametrize("architecture", ARCHITECTURES.names())
@pytest.mark.parametrize("head", ["ctc", "classification", "regression"])
def test_every_architecture_and_head(architecture: str, head: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(architecture=architecture, head=head)
    shape = ARCHITECTURES.get(architecture).example_input
    outputs = 1 if head == "regression" else 11
    model = create_model(architecture, shape, outputs, **model_kwargs(cfg))
    x = torch.randn(3, *shape)
    out = model(x)
    if head == "regression":  # one number per input
        assert out.shape == (3,)
    elif head == "ctc":
        assert out.shape[0] == 3 and out.shape[2] == 11
        assert out.shape[1] == model.seq_len
        if len(shape) == 3:  # images: room for 8 characters with repeats along the width
            assert model.seq_len >= 2 * 8 + 1
    else:
        assert out.shape == (3, 11)
    assert torch.isfinite(out).all()
    (
        out.float().square().mean() if head == "regression" else out.float().logsumexp(-1).mean()
    ).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_preset_defaults_and_explicit_overrides() -> None:
    shi = model_kwargs(ModelConfig(architecture="crnn_shi2015"))
    assert shi["conv_channels"] == [64, 128, 256, 256, 512, 512, 512]
    assert shi["rnn_hidden"] == 256
    model = create_model("crnn_shi2015", SHAPE, 11, **shi)
    params = sum(p.numel() for p in model.parameters())
    # Shi et al. report ~8.3 M with a final 2x2 conv; uniform 3x3 kernels give ~10 M
    assert 8e6 < params < 1.1e7
    assert model_kwargs(ModelConfig(architecture="crnn_shi2015", rnn_hidden=64))["rnn_hidden"] == 64


def test_gru_and_unidirectional() -> None:
    kw = model_kwargs(ModelConfig(rnn="gru", bidirectional=False, rnn_hidden=16))
    model = create_model("crnn", (1, 12, 89), 11, **kw)
    assert isinstance(model.sequence.rnn, torch.nn.GRU)
    assert model(torch.randn(2, 1, 12, 89)).shape == (2, model.seq_len, 11)


def test_too_small_input_and_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="too small"):
        create_model(
            "crnn_shi2015", (1, 8, 8), 11, **model_kwargs(ModelConfig(architecture="crnn_shi2015"))
        )
    known = ", ".join(ARCHITECTURES.names())
    assert "crnn, crnn_shi2015, crnn_small" in known
    with pytest.raises(KeyError, match=f"known: {known}"):
        create_model("resnet", SHAPE, 11)


def _logits(path: list[int], classes: int = 4) -> torch.Tensor:
    x = torch.full((len(path), classes), -5.0)
    x[torch.arange(len(path)), torch.tensor(path)] = 5.0
    return x


def test_ctc_greedy_decoding() -> None:
    batch = torch.stack(
        [
            _logits([0, 1, 1, 0, 1, 2, 2, 0]),  # repeats merge; a blank separates a real repeat
            _logits([0, 0, 0, 0, 0, 0, 0, 0]),  # all blank: empty
            _logits([3, 3, 3, 3, 3, 3, 3, 3]),  # one long character
            _logits([1, 2, 1, 2, 0, 0, 3, 0]),
        ]
    )
    assert ctc_greedy_decode(batch) == [[1, 1, 2], [], [3], [1, 2, 1, 2, 3]]
    assert ctc_greedy_strings(batch, "aβ中") == ["aaβ", "", "中", "aβaβ中"]  # any code point


def test_vectorized_decoding_matches_per_row_decoding() -> None:
    charset = "0123456789abcdefghij"
    logits = torch.randn(64, 30, len(charset) + 1, generator=torch.Generator().manual_seed(0))
    logits[:, ::3, 0] += 3.0  # plenty of blanks, so rows differ in length
    expected = ["".join(charset[i - 1] for i in ids) for ids in ctc_greedy_decode(logits)]
    assert ctc_greedy_strings(logits, charset) == expected
    assert len(set(map(len, expected))) > 3


def test_rows_as_the_sequence() -> None:
    kw = model_kwargs(ModelConfig(head="classification", sequence_axis="height", rnn_hidden=8))
    model = create_model("crnn", (1, 40, 16), 3, **kw)
    assert model.seq_len == 40 // 4  # the 40 rows, pooled like the width would be
    by_columns = create_model("crnn", (1, 40, 16), 3, **{**kw, "sequence_axis": "width"})
    assert by_columns.seq_len == 16 // 4
    assert model(torch.zeros(2, 1, 40, 16)).shape == (2, 3)
    assert model_kwargs(ModelConfig(sequence_axis="height"))["sequence_axis"] == "height"
    # architectures without the option do not receive it
    assert "sequence_axis" not in model_kwargs(ModelConfig(architecture="video_crnn"))
