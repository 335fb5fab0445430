"""Input and hashing: sources (files, gzip, stdin, read-ahead), one reader per log format,
the FeatureHasher and the synthetic Criteo-schema data. Produces :class:`HashedRows`, the one
type that crosses every layer."""
