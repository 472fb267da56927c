"""New competition workspaces from the template packs shipped in `coordinator_dagster/cli/templates`.

A workspace is a folder with its contract module, its models and their manifest, a `.env` with
every setting, its own `workspace.yaml`, a README, tests and a Makefile that runs it with the
coordinator installation it was generated from. This module validates the name, renders a pack
and moves the result into place in one rename, so a failure leaves nothing behind. The
command-line wrapper is `coordinator_dagster/cli/workspace.py`.
"""

from __future__ import annotations

import importlib.machinery
import json
import keyword
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
MAX_NAME_LENGTH = 40
TEMPLATE_SUFFIX = ".tmpl"
PACKAGE_DIR = "__package__"
DOT_PREFIX = "dot-"
# Pack metadata files: read by the scaffold, never copied into the workspace.
PACK_META = ("pack.json", "summary.md", "files.md")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
# Top-level packages of the coordinator itself: a workspace package of the same name would
# shadow them once the workspace is on PYTHONPATH.
_COORDINATOR_PACKAGES = {"coordinator_dagster", "assets", "sensors", "resources", "api", "tests", "scripts"}


class WorkspaceError(ValueError):
    """The workspace cannot be created; nothing was written."""


@dataclass(frozen=True)
class Pack:
    name: str
    description: str


def templates_root() -> Traversable:
    return resources.files("coordinator_dagster.cli") / "templates"


def available_packs() -> list[Pack]:
    packs = []
    for entry in sorted(templates_root().iterdir(), key=lambda e: e.name):
        meta = entry / "pack.json"
        if entry.is_dir() and meta.is_file():
            packs.append(Pack(entry.name, json.loads(meta.read_text(encoding="utf-8"))["description"]))
    return packs


def check_pack(pack: str) -> str:
    names = [p.name for p in available_packs()]
    if pack not in names:
        raise WorkspaceError(f"unknown template {pack!r}; available: {', '.join(names)}")
    return pack


def package_name(name: str) -> str:
    return name.replace("-", "_")


def validate_name(name: str) -> str:
    """`name` if it can name both the folder and (with '-' → '_') a Python package, else WorkspaceError."""
    if not name:
        raise WorkspaceError("the workspace name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise WorkspaceError(f"the workspace name is {len(name)} characters long; at most {MAX_NAME_LENGTH}")
    if not NAME_PATTERN.match(name):
        raise WorkspaceError(
            f"{name!r} is not a valid workspace name: use lowercase letters, digits, '-' and '_', starting with a letter"
        )
    module = package_name(name)
    if keyword.iskeyword(module):
        raise WorkspaceError(f"{name!r} would make the Python package {module!r}, which is a Python keyword")
    if module in _COORDINATOR_PACKAGES:
        raise WorkspaceError(f"{name!r} would make the Python package {module!r}, which the coordinator itself uses")
    if module in sys.builtin_module_names or module in sys.stdlib_module_names or _installed(module):
        raise WorkspaceError(
            f"{name!r} would make the Python package {module!r}, which would shadow an installed module of that name"
        )
    return name


def _installed(module: str) -> bool:
    # Search the interpreter's path without the working directory, so a folder that happens to
    # sit where the command runs does not count as an installed module.
    here = {"", os.getcwd()}
    path = [p for p in sys.path if p not in here]
    return importlib.machinery.PathFinder.find_spec(module, path) is not None


def coordinator_bin() -> Path:
    """The bin folder of this installation (python, coordinator, dagster)."""
    return Path(sysconfig.get_path("scripts"))


def coordinator_root() -> Path | None:
    """The coordinator checkout this package runs from, if any (it holds scripts/run.sh)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "scripts" / "run.sh").is_file() else None


def render_values(name: str, pack: str, bin_dir: Path, root: Path | None) -> dict[str, str]:
    package = package_name(name)
    pack_dir = templates_root() / pack
    values = {
        "name": name,
        "package": package,
        "pack": pack,
        "coordinator_bin": str(bin_dir),
        "coordinator_root": str(root) if root else "",
    }
    values["pack_summary"] = _fill((pack_dir / "summary.md").read_text(encoding="utf-8").strip(), values, "summary.md")
    values["pack_files"] = _fill((pack_dir / "files.md").read_text(encoding="utf-8"), values, "files.md")
    return values


def _fill(text: str, values: dict[str, str], source: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise WorkspaceError(f"template {source}: unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(replace, text)


def _target_name(part: str, package: str) -> str:
    if part == PACKAGE_DIR:
        return package
    if part.startswith(DOT_PREFIX):
        part = "." + part[len(DOT_PREFIX) :]
    return part.removesuffix(TEMPLATE_SUFFIX)


def _template_files(folder: Traversable, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Traversable]:
    files: dict[tuple[str, ...], Traversable] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            files.update(_template_files(entry, (*prefix, entry.name)))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            files[(*prefix, entry.name)] = entry
    return files


def render(pack: str, values: dict[str, str]) -> dict[Path, str]:
    """Relative path → text of every file of the workspace (common files, then the pack's)."""
    check_pack(pack)
    root = templates_root()
    files = {**_template_files(root / "common"), **_template_files(root / pack)}
    out: dict[Path, str] = {}
    for parts, source in sorted(files.items()):
        target = Path(*(_target_name(part, values["package"]) for part in parts))
        out[target] = _fill(source.read_text(encoding="utf-8"), values, "/".join(parts))
    env = json.loads((root / pack / "pack.json").read_text(encoding="utf-8")).get("env", {})
    out[Path(".env")] = with_env(out[Path(".env")], env)
    return out


def with_env(text: str, env: dict[str, str]) -> str:
    """The .env text with the pack's own values (pack.json "env") in place of the common ones
    (e.g. the synth pack's feed carries the three assets its profiles ask about)."""
    for name, value in env.items():
        text, count = re.subn(rf"^{re.escape(name)}=.*$", f"{name}={value}", text, flags=re.M)
        if count != 1:
            raise WorkspaceError(f"pack.json env: {name} is not a setting of the .env template")
    return text


def create_workspace(name: str, pack: str = "realtime", parent: Path | None = None) -> Path:
    """Render `pack` into `parent/name` and return that folder; WorkspaceError leaves nothing behind."""
    validate_name(name)
    check_pack(pack)
    parent = Path(parent) if parent is not None else Path.cwd()
    if not parent.is_dir():
        raise WorkspaceError(f"{parent} is not an existing folder")
    parent = parent.resolve()
    target = parent / name
    if re.search(r"\s", str(target)):
        # make and the coordinator's run script split commands on whitespace.
        raise WorkspaceError(f"{target}: the workspace path must not contain spaces")
    if target.exists() or target.is_symlink():
        raise WorkspaceError(f"{target} already exists; choose another name or remove it first")
    files = render(pack, render_values(name, pack, coordinator_bin(), coordinator_root()))

    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o755)
        try:
            # Claiming the name with mkdir is atomic: if another process created it meanwhile,
            # this fails instead of writing into that folder. The rename then replaces the empty
            # folder we own in one step.
            target.mkdir()
        except FileExistsError:
            raise WorkspaceError(f"{target} already exists; choose another name or remove it first") from None
        try:
            staging.rename(target)
        except OSError:
            target.rmdir()
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
