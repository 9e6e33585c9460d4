"""Speech to text: spoken digit strings composed from a folder of single-word recordings.

Each recording is one word named as ``audio_folder`` names them (``{digit}_{speaker}_{n}.wav``).
The recordings are split first, by speaker when ``group`` is set, so that no recording (and no
speaker) appears in two splits; each split's utterances are then composed from its own
recordings only: words with their silence trimmed, random pauses between them, padded to
``duration_seconds``, with the transcript as target. Recognized with CTC like text lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from crnn.config import AudioFolderData, Recordings, SpokenDigitStringsData
from crnn.data import audio  # the module, not its names: the source registry may be loading it
from crnn.data.files import files_digest
from crnn.data.sources import SOURCES, SPLITS, TargetSpec
from crnn.errors import DataError
from crnn.types.records import Chunk, SourceFeatures, SourceInfo

TRIM_DB = 30.0  # a word's samples within this many dB of its loudest 10 ms window are kept


def trim_silence(wave: np.ndarray, rate: int) -> np.ndarray:
    """The word without its leading and trailing silence."""
    window = max(1, rate // 100)
    frames = len(wave) // window
    if frames == 0:
        return wave
    energy = (wave[: frames * window].reshape(frames, window) ** 2).mean(axis=1) + 1e-12
    loud = np.flatnonzero(10 * np.log10(energy / energy.max()) > -TRIM_DB)
    return wave[loud[0] * window : (loud[-1] + 1) * window]


@SOURCES.register("spoken_digit_strings")
class SpokenDigitStringsSource:
    """Utterances of ``min_words``..``max_words`` recordings of one split, with transcripts."""

    INPUT_SUFFIXES = frozenset({".wav"})  # what a folder given to `crnn predict` stands for

    def __init__(self, cfg: SpokenDigitStringsData) -> None:
        self.cfg = cfg
        words = audio.AudioFolderSource(self.word_config(cfg))  # labels, groups, the split of files
        self.files, self.word_labels, self.pools = words.files, words.classes, words.pools
        self.labels = words.labels
        self.sep = "" if all(len(w) == 1 for w in self.word_labels) else " "
        self.charset = "".join(sorted(set(self.sep.join(self.word_labels))))
        self.spectrogram, self.shape = audio.wave_features(self.word_config(cfg))
        self._words: dict[int, np.ndarray] = {}
        for split in SPLITS:
            if not len(self.pools[split]):
                raise DataError(f"{words.root}: no recording falls in the {split} split")

    @staticmethod
    def word_config(cfg: SpokenDigitStringsData) -> AudioFolderData:
        shared = Recordings.model_fields.keys()
        return AudioFolderData.model_validate({k: getattr(cfg, k) for k in shared})

    def info(self) -> SourceInfo:
        config = self.cfg.model_dump(mode="json")
        return SourceInfo(
            name="spoken_digit_strings",
            description=f"spoken strings of {self.cfg.min_words}-{self.cfg.max_words} words "
            f"composed from {len(self.files)} recordings",
            digest=files_digest(self.files, {k: v for k, v in config.items() if k != "path"}),
            input_shape=self.shape,
            target=TargetSpec(kind="sequence", charset=self.charset),
            config=config,
            modality="audio",
            features=audio.mel_features(config),
        )

    def word(self, index: int) -> np.ndarray:
        """Recording ``index``, trimmed, at the configured rate (cached: a split reuses words)."""
        if index not in self._words:
            rate = self.cfg.sample_rate
            wave = audio.read_wav(self.files[index], rate, duration=None)
            self._words[index] = trim_silence(wave, rate)
        return self._words[index]

    def utterances(self, split: str) -> Iterator[tuple[str, np.ndarray, str]]:
        """(sample id, waveform, transcript) of every utterance of ``split``, deterministic."""
        cfg, pool = self.cfg, self.pools[split]
        rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
        total = round(cfg.duration_seconds * cfg.sample_rate)
        for i in range(getattr(cfg.lines, split)):
            count = int(rng.integers(cfg.min_words, cfg.max_words + 1))
            wave = np.zeros(total, np.float32)
            pos = int(rng.integers(0, round(cfg.max_pause_seconds * cfg.sample_rate) + 1))
            said = []
            for index in rng.choice(pool, size=count):
                word = self.word(int(index))
                if pos + len(word) > total:
                    break  # the utterance is full: its transcript ends with the last whole word
                wave[pos : pos + len(word)] = word
                said.append(self.word_labels[self.labels[index]])
                pause = rng.uniform(cfg.min_pause_seconds, cfg.max_pause_seconds)
                pos += len(word) + round(pause * cfg.sample_rate)
            yield f"{split}-{i:07d}", wave, self.sep.join(said)

    def chunks(self, split: str, chunk_rows: int) -> Iterator[Chunk]:
        ids: list[str] = []
        inputs: list[np.ndarray] = []
        texts: list[str] = []
        for sample_id, wave, text in self.utterances(split):
            ids.append(sample_id)
            inputs.append(self.spectrogram(wave))
            texts.append(text)
            if len(ids) == chunk_rows:
                yield Chunk(split, ids, np.stack(inputs), texts=texts)
                ids, inputs, texts = [], [], []
        if ids:
            yield Chunk(split, ids, np.stack(inputs), texts=texts)

    @staticmethod
    def raw_inputs(
        model_input: Any, source: dict[str, Any], features: SourceFeatures
    ) -> np.ndarray:
        """Waveforms, WAV bytes or WAV paths -> log-mel spectrograms (``waves_to_inputs``)."""
        return audio.waves_to_inputs(model_input, source)

    @staticmethod
    def raw_example(manifest: Any, test: Any, rows: int) -> pd.DataFrame:
        """The first test utterances as waveforms at the model's rate."""
        source = manifest.source.get("config", {})
        waves = raw_waves(source, rows)
        return pd.DataFrame({"audio": waves, "sample_rate": [int(source["sample_rate"])] * rows})

    @classmethod
    def new_data(cls, cfg: Any, features: SourceFeatures, chunk_rows: int) -> Iterator[Chunk]:
        """New speech to transcribe: every WAV file under ``cfg.path``, one utterance each."""
        yield from audio.AudioFolderSource.new_data(cls.word_config(cfg), features, chunk_rows)


def raw_waves(source: dict[str, Any], rows: int) -> list[np.ndarray]:
    """The first test utterances as waveforms (the pyfunc's input example)."""
    cfg = SpokenDigitStringsData.model_validate(source)
    utterances = SpokenDigitStringsSource(cfg).utterances("test")
    return [wave for _, (_, wave, _) in zip(range(rows), utterances, strict=False)]
