"""The assistant's evaluation bank: facts from the rasters, questions people write, and the checker.

`truth` reads the Flanders rasters with rasterio and numpy only (never the project's indexer or
store), `questions` writes the bank from those facts, `check` scores one answer against one
question's facts. `eval/assistant_eval.py` runs them against the real assistant.
"""
