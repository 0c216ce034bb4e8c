"""Streamlit app: renders and calls `assistant` and `indexer` only."""
