"""Data: sources (one reader per format), normalization, augmentation, Parquet shards, loading."""
