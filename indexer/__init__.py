"""Indexer: Sentinel-2 reading, parcels, chips, spectral indices, analyses and the FAISS store."""
