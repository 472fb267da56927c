"""The model manifest: which participant models a node runs, and where their code lives.

A manifest is a JSON file: a list of entries (or `{"models": [...]}`), one per model:

    {"model_id": "momentum", "name": "Momentum", "cruncher": "alice", "cruncher_index": 0,
     "entrypoint": "my_model:Tracker", "path": "models/momentum"}

`entrypoint` is `module:attribute` of a tracker class (or a factory returning a tracker);
`path`, optional, is the model's folder, relative to the manifest's directory, put first on the
worker's import path so the folder's modules import. Parsing never imports model code: that
happens only inside a model's own worker process.

The reference engine's model list (`models.dev.yml`: `models:` entries with `id`, `model_name`,
`cruncher_name`, `submission_id`, `desired_state`) is read too: each RUNNING entry runs the one
model class of `submissions/<submission_id>/main.py` next to the file, its cruncher index the
entry's position.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from coordinator_dagster.models.runner import EXAMPLE_MODELS, ModelSpec

MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:([A-Za-z_][\w.]*|\*)$")
REQUIRED = ("model_id", "name", "cruncher", "cruncher_index", "entrypoint")
OPTIONAL = ("path",)


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the entry."""


def parse_manifest(text: str, source: str = "manifest", base_dir: Path | None = None) -> list[ModelSpec]:
    """The specs a manifest's JSON text lists, or ManifestError saying what is wrong where."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"model manifest {source}: not valid JSON: {exc}") from None
    if isinstance(data, dict) and "models" in data:
        data = data["models"]
    if not isinstance(data, list):
        raise ManifestError(f"model manifest {source}: expected a JSON list of models (or {{\"models\": [...]}}), got {type(data).__name__}")
    specs = []
    for position, entry in enumerate(data):
        where = f"model manifest {source}, entry {position}"
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [key for key in REQUIRED if key not in entry]
        unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
        if missing or unknown:
            raise ManifestError(f"{where}: missing keys {missing}, unknown keys {unknown}")
        model_id = entry["model_id"]
        if not isinstance(model_id, str) or not MODEL_ID.match(model_id):
            raise ManifestError(f"{where}: model_id {model_id!r} must be 1-100 letters, digits, '_', '.' or '-'")
        for key in ("name", "cruncher", "entrypoint"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ManifestError(f"{where} ({model_id}): {key} must be a non-empty string")
        if not ENTRYPOINT.match(entry["entrypoint"]):
            raise ManifestError(f"{where} ({model_id}): entrypoint {entry['entrypoint']!r} is not 'module:attribute'")
        index = entry["cruncher_index"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ManifestError(f"{where} ({model_id}): cruncher_index must be a non-negative integer, got {index!r}")
        path = entry.get("path") or ""
        if not isinstance(path, str):
            raise ManifestError(f"{where} ({model_id}): path must be a string")
        if path and base_dir is not None and not Path(path).is_absolute():
            path = str((base_dir / path).resolve())
        specs.append(ModelSpec(model_id, entry["name"], entry["cruncher"], index, entry["entrypoint"], path))
    ids = [spec.model_id for spec in specs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ManifestError(f"model manifest {source}: duplicate model ids {duplicates}")
    return specs


def parse_reference_models(text: str, source: str, base_dir: Path | None = None) -> list[ModelSpec]:
    """The specs of a reference `models.dev.yml`, as manifest entries checked like any other."""
    import yaml  # Dagster's own dependency

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"model list {source}: not valid YAML: {exc}") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ManifestError(f"model list {source}: expected a 'models:' list")
    entries = []
    for position, item in enumerate(models):
        where = f"model list {source}, entry {position}"
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: expected a mapping, got {type(item).__name__}")
        missing = [key for key in ("id", "model_name", "cruncher_name", "submission_id") if key not in item]
        if missing:
            raise ManifestError(f"{where}: missing keys {missing}")
        if str(item.get("desired_state", "RUNNING")).upper() != "RUNNING":
            continue
        entries.append({
            "model_id": str(item["id"]), "name": str(item["model_name"]), "cruncher": str(item["cruncher_name"]),
            "cruncher_index": position, "entrypoint": "main:*", "path": f"submissions/{item['submission_id']}",
        })
    return parse_manifest(json.dumps(entries), source, base_dir)


def load_manifest(path: str | Path | None) -> list[ModelSpec]:
    """The manifest at `path`; no path means the three example models."""
    if not path:
        return list(EXAMPLE_MODELS)
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ManifestError(f"model manifest {file}: cannot read it: {exc.strerror or exc}") from None
    if file.suffix in (".yml", ".yaml"):
        return parse_reference_models(text, str(file), file.resolve().parent)
    return parse_manifest(text, str(file), file.resolve().parent)


def manifest_entry(spec: ModelSpec) -> dict:
    entry = {"model_id": spec.model_id, "name": spec.name, "cruncher": spec.cruncher, "cruncher_index": spec.cruncher_index, "entrypoint": spec.entrypoint}
    if spec.path:
        entry["path"] = spec.path
    return entry
