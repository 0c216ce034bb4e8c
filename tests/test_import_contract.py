"""The one-way package order (README, "Design"), checked on every module's imports.

Each module of the project belongs to one group, the longest prefix listed in `LAYERS`, and so
to that group's layer; a module may import its own layer and the layers below it, never one
above. `FORBIDDEN` refuses a few edges inside or below a layer: reading code and the serving
model sit side by side, and neither knows the other. A module that matches no prefix is itself a failure, so a
new package cannot slip past the contract.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexer", "xvision_model", "assistant", "ui", "xvision")

#: Bottom (0) to top. Prefixes are module names; the longest matching prefix decides.
LAYERS: dict[str, int] = {
    "indexer.core": 0,
    # reading, chips, indices' statistics, analysis text, the store and its queries
    "indexer": 1,
    # the serving model: encoders, adapter, splice, LM, artifacts, tokenizer
    "xvision_model": 1,
    # composing them: the indexing pipeline (the encoder is handed to it), fine-tuning, evaluation
    "indexer.pipeline": 2,
    "indexer.cluster": 2,  # the pipeline on a Dask cluster (encoder factory handed to it)
    "xvision_model.finetune": 2,
    "xvision_model.evaluate": 2,
    "xvision_model.writer": 2,  # what users read: the generator held to the analysis grammar (indexer.analysis)
    "assistant": 3,
    "ui": 4,
    "xvision": 4,  # the command line: nothing imports it
}
BASE = "indexer.core"
#: (importing group, imported group prefix) refused whatever the layers; the base is always allowed.
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("indexer", "xvision_model"),  # reading code never imports the model ...
    ("xvision_model", "indexer"),  # ... nor the serving model the reading code: they sit side by side
    ("indexer.pipeline", "xvision_model"),  # the encoder is handed to the pipeline
    ("indexer.cluster", "xvision_model"),  # ... and its factory to the cluster
    ("ui", "xvision_model"),  # the app reaches the model only through the assistant
)


def _group(module: str, prefixes) -> str | None:
    matches = [p for p in prefixes if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for file in (ROOT / package).rglob("*.py"):
            parts = file.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return out


def _imports(module: str, file: Path) -> list[tuple[str, int]]:
    """Project modules imported by `file` (absolute and relative, at any depth), with line numbers."""
    tree = ast.parse(file.read_text(), filename=str(file))
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((target, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] in PACKAGES]


def back_edges() -> list[str]:
    """Every import that breaks the order, as "file:line: a (layer) imports b (layer)"."""
    problems = []
    for module, file in sorted(_modules().items()):
        source = _group(module, LAYERS)
        if source is None:
            problems.append(f"{file}: module {module} is in no layer of the import contract")
            continue
        for target, line in _imports(module, file):
            where = f"{file.relative_to(ROOT)}:{line}: {module}"
            group = _group(target, LAYERS)
            if group is None:
                continue
            if LAYERS[group] > LAYERS[source]:
                problems.append(f"{where} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[group]})")
            for importer, imported in FORBIDDEN:
                if source == importer and group != BASE and (group == imported or group.startswith(imported + ".")):
                    problems.append(f"{where} imports {target}: {importer} must not import {imported}")
    return problems


def test_dependencies_run_one_way():
    problems = back_edges()
    assert not problems, "import contract broken:\n" + "\n".join(problems)


def test_contract_catches_a_back_edge(monkeypatch):
    """The check is not vacuous: a store module importing the CLI, or the model, is reported."""
    original = _imports

    def with_back_edges(module, file):
        extra = [("xvision.cli", 1), ("xvision_model.encoders", 2)] if module == "indexer.store" else []
        return original(module, file) + extra

    monkeypatch.setitem(globals(), "_imports", with_back_edges)
    problems = back_edges()
    assert any("indexer.store (layer 1) imports xvision.cli (layer 4)" in p for p in problems)
    assert any("indexer.store imports xvision_model.encoders: indexer must not import xvision_model" in p
               for p in problems)


@pytest.mark.parametrize(("module", "layer"), [("indexer.core.errors", 0), ("indexer.store", 1),
                                               ("indexer.pipeline", 2), ("xvision_model.finetune.train", 2),
                                               ("xvision.cli", 4)])
def test_layers_are_assigned_by_longest_prefix(module, layer):
    assert LAYERS[_group(module, LAYERS)] == layer
