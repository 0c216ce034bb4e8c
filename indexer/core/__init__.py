"""The shared base every layer may import: error types, Sentinel-2 facts, spectral index
definitions and the record schema. It imports nothing else of the project."""
