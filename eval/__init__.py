"""Evaluation of the assistant: the generated farm (`eval.farm`) and the scoring script (`eval.assistant_eval`)."""
