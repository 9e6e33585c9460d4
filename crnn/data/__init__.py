"""Data: sources (the protocol in sources.py; every reader module listed in catalog.py; readers
by modality: embedded, images, video, audio, speech, text), splits, normalization, augmentation,
Parquet shards and their manifest, loading."""
