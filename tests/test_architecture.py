"""The architecture holds: the import-linter layer contracts, a core import that pulls in no
optional package, and stubs that describe every public name of the compiled extensions."""
import ast
import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTENSIONS = ("_hash", "_parse", "_parse_sparse", "_score")


def test_import_contracts_are_kept():
    # In a fresh interpreter: import-linter imports and analyses the whole package.
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"an import contract is broken:\n{run.stdout}\n{run.stderr}"
    assert " 0 broken" in run.stdout, run.stdout


def test_ruff_finds_nothing():
    # The rules and their reasoned exceptions are in pyproject.toml ([tool.ruff]).
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "fastctr", "tests", "benches"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"ruff findings:\n{run.stdout}\n{run.stderr}"


def test_the_contracts_name_every_subpackage():
    # A new subpackage must be placed in the layers (or in a forbidden contract) on purpose.
    text = (ROOT / "pyproject.toml").read_text()
    for path in sorted((ROOT / "fastctr").iterdir()):
        if path.name.startswith("__") or path.suffix not in ("", ".py") or path.name == "py.typed":
            continue
        name = f"fastctr.{path.stem}"
        assert f'"{name}' in text or f"| {name}" in text or f"{name} |" in text, (
            f"{name} is in no import-linter contract of pyproject.toml")


def test_import_fastctr_loads_no_optional_package():
    # numba's own dependency check may import scipy's top level: only what fastctr adds counts.
    code = ("import json, sys, numba, numpy, mmh3; before = set(sys.modules); import fastctr; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    added = json.loads(run.stdout)
    forbidden = ("fastctr.image", "fastctr.bench", "sklearn", "pandas", "scipy", "skimage",
                 "matplotlib")
    pulled = [m for m in added if m.split(".")[0] in forbidden or m.startswith(forbidden)]
    assert not pulled, f"import fastctr imports optional code: {pulled}"
    assert "fastctr.online.training" in added  # the probe did import the package


def _stub_names(path: Path) -> set[str]:
    """Public names a .pyi defines at module level."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def _public(module) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_")
            and not isinstance(getattr(module, n), types.ModuleType)}


@pytest.mark.parametrize("name", EXTENSIONS)
def test_stubs_name_every_public_attribute_of_the_extension(name):
    stub = ROOT / "fastctr" / "_ext" / f"{name}.pyi"
    module = importlib.import_module(f"fastctr._ext.{name}")
    assert _stub_names(stub) == _public(module)


@pytest.mark.parametrize("name", EXTENSIONS)
def test_stub_methods_and_parameters_match_the_extension(name):
    """Each stubbed function and method exists, with the compiled one's parameter names."""
    import inspect

    module = importlib.import_module(f"fastctr._ext.{name}")
    tree = ast.parse((ROOT / "fastctr" / "_ext" / f"{name}.pyi").read_text())

    def check(node, owner, where):
        real = getattr(owner, node.name, None)
        assert real is not None, f"{where}{node.name} is stubbed but not compiled"
        try:
            signature = inspect.signature(real)
        except (TypeError, ValueError):  # a slot wrapper (e.g. a cdef class __init__)
            return
        stubbed = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
        compiled = list(signature.parameters)
        if compiled[-2:] == ["args", "kwargs"]:  # a cdef class's __init__ hides its parameters
            return
        if stubbed[:1] == ["self"] and compiled[:1] != ["self"]:
            stubbed = stubbed[1:]
        assert stubbed == compiled, f"{where}{node.name}: stub {stubbed} != compiled {compiled}"

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            check(node, module, "")
        elif isinstance(node, ast.ClassDef):
            cls = getattr(module, node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    check(item, cls, f"{node.name}.")
            if not any(isinstance(b, ast.Name) and b.id == "IntEnum" for b in node.bases):
                public = {m for m in vars(cls) if not m.startswith("_")}
                stubbed = {i.name for i in node.body if isinstance(i, ast.FunctionDef)}
                assert public <= stubbed, f"{node.name}: {sorted(public - stubbed)} not stubbed"


def test_stubs_and_marker_ship_with_the_package():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"fastctr._ext" = ["*.pyi"]' in text and 'fastctr = ["py.typed"]' in text
    assert (ROOT / "fastctr" / "py.typed").exists()


def test_architecture_md_describes_every_subpackage():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    for path in sorted((ROOT / "fastctr").iterdir()):
        if path.is_dir() and (path / "__init__.py").exists():
            assert f"fastctr/{path.name}/" in text, f"ARCHITECTURE.md does not describe {path.name}/"
        elif path.suffix == ".py" and path.name != "__init__.py":
            assert path.name in text, f"ARCHITECTURE.md does not describe {path.name}"
