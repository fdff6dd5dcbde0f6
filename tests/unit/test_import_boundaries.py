"""Who may import whom: server code never the client or the drivers; the client never
server code nor the operations it must reach through SQL.

Read from the source with ``ast`` (nothing is imported), so a violation fails here
before it fails inside a segment.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "backend" / "gpdl_backend"
SERVER = BACKEND / "server"
CLIENT = ROOT / "gpdl_jupyter"
# Pure modules both sides use.
SHARED = {"gpdl_backend", "gpdl_backend.errors", "gpdl_backend.selection",
          "gpdl_backend.keras_model"}
# The client sends one SQL call for each of these; importing one would be a second way in.
OPERATIONS = {
    "load_images", "training_preprocessor", "validation_preprocessor", "load_keras_model",
    "delete_keras_model", "load_model_selection_table", "generate_model_configs",
    "add_model_to_selection", "fit_multiple_model", "resume", "plan_new", "plan_resume",
    "predict", "predict_byom", "predict_image", "evaluate", "gpu_usage", "gpu_configuration",
    "plan_search", "automl_plan", "write_hyperband_schedule", "extend_config", "clone_config",
}


def modules_imported(path: Path) -> set[str]:
    """Every module (and ``module.name`` for from-imports) a file imports, absolute."""
    base_dir = ROOT / "backend" if BACKEND in path.parents else ROOT
    package = path.relative_to(base_dir).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package, up level - 1
                parts = list(package[: len(package) - node.level + 1])
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def from_imports(path: Path) -> set[tuple[str, str]]:
    """``(module, name)`` of every ``from module import name`` (absolute ones)."""
    return {(node.module, alias.name) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
            for alias in node.names}


def python_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.py"))


def _is_server(name: str) -> bool:
    return name == "gpdl_backend.server" or name.startswith("gpdl_backend.server.")


def _allowed_in_server(name: str) -> bool:
    """``gpdl_backend.server...``, a shared module, or a name imported from one."""
    return (_is_server(name) or name in SHARED
            or name.rsplit(".", 1)[0] in SHARED - {"gpdl_backend"})


@pytest.mark.parametrize("path", python_files(SERVER), ids=lambda p: p.name)
def test_server_code_imports_only_itself_and_shared_modules(path: Path) -> None:
    bad = set()
    for name in modules_imported(path):
        top = name.split(".")[0]
        client_side = top in ("gpdl_jupyter", "IPython", "ipywidgets", "plotly", "psycopg2")
        if client_side or (top == "gpdl_backend" and not _allowed_in_server(name)):
            bad.add(name)
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", python_files(CLIENT), ids=lambda p: str(p.relative_to(CLIENT)))
def test_client_never_imports_server_code_or_operations(path: Path) -> None:
    imported = modules_imported(path)
    server = {n for n in imported if _is_server(n)}
    operations = {f"{module}.{name}" for module, name in from_imports(path)
                  if module.startswith("gpdl_backend") and name in OPERATIONS}
    assert not server, f"{path.relative_to(ROOT)} imports server code {sorted(server)}"
    assert not operations, (f"{path.relative_to(ROOT)} imports {sorted(operations)}: "
                            "call the SQL function through gpdl_jupyter.api instead")


def test_the_checks_see_imports() -> None:
    """The parser finds absolute and relative imports (else the tests above pass vacuously)."""
    worker = modules_imported(SERVER / "worker.py")
    assert "gpdl_backend.keras_model" in worker
    editor = modules_imported(CLIENT / "widgets" / "arch_editor.py")
    assert "gpdl_jupyter.api" in editor
    assert any(name.startswith("gpdl_jupyter.widgets._layers") for name in editor)
