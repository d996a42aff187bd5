"""The package's shape: imports flow one way (a layered DAG, the README's layout section) and importing modernconv
has no global side effects."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import modernconv

PACKAGE = Path(modernconv.__file__).parent
# lower layers never import higher ones; a unit is a sub-package or a top-level module
LAYERS = (
    ("errors", "variants"),
    ("files", "values"),
    ("runtime", "plots"),
    ("layers", "checkpoint", "reparam", "optim", "data"),
    ("models",),
    ("modalities", "dense"),
    ("conversion", "config"),
    ("engine", "analysis", "deploy"),
    ("pretrain",),
    ("tasks",),
    ("experiments",),
    ("cli", "__init__", "timm_plugin"),
    ("__main__",),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """'modernconv.engine.train' -> 'engine'; 'modernconv' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every modernconv module ``path`` imports, at any depth of the file (function-level imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("modernconv")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("modernconv"):
                found.add(target)
    return found


def edges() -> set[tuple[str, str]]:
    out = set()
    for path in PACKAGE.rglob("*.py"):
        source = unit_of(module_name(path))
        out |= {(source, unit_of(t)) for t in imported_modules(path) if unit_of(t) != source}
    return out


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(RANK), f"add to LAYERS: {sorted(units - set(RANK))}"


@pytest.mark.parametrize("edge", sorted(edges()), ids=lambda e: f"{e[0]}->{e[1]}")
def test_imports_only_go_down(edge):
    source, target = edge
    assert RANK[target] < RANK[source], f"{source} (layer {RANK[source]}) imports {target} (layer {RANK[target]})"


def test_the_checkpoint_layer_is_a_leaf_and_models_never_import_the_engine():
    graph = edges()
    assert not {t for s, t in graph if s == "checkpoint"} - {"errors", "files"}
    assert ("models", "engine") not in graph and ("layers", "models") not in graph


def test_importing_modernconv_leaves_matplotlib_alone():
    code = ("import sys, matplotlib; matplotlib.use('svg'); import modernconv, modernconv.cli; "
            "assert 'matplotlib.pyplot' not in sys.modules; assert matplotlib.rcParams['backend'] == 'svg'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["models", "--family", "convnext*"], ["--version"]])
def test_help_and_the_model_list_start_without_torch(argv):
    code = ("import sys; from modernconv.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'" % argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_variant_table_is_the_registry():
    from modernconv.models import get_model_spec, list_models
    from modernconv.variants import list_variants
    assert list_variants() == [(name, get_model_spec(name).family) for name in list_models()]


def test_images_are_a_modality_without_branches_elsewhere():
    """What differs for images lives in modalities/image.py; nowhere else compares a modality with "image"."""
    branch = re.compile(r"""(\bIMAGE|["']image["'])\s*[!=]=|[!=]=\s*(IMAGE\b|["']image["'])""")
    offenders = [f"{p.relative_to(PACKAGE)}:{n}" for p in PACKAGE.rglob("*.py") if p.name != "image.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if branch.search(line)]
    assert not offenders, offenders
