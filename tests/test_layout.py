"""The package's shape, as the contributing guide describes it: no import loops, no upward imports, small
files, a short package root. These are the rules a newcomer relies on to find every room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "curate"
MAX_ROOT_MODULES = 14
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every ``curate`` module that ``path`` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("curate")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if not mod.startswith("curate"):
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from curate.cli import run` names a module
    return out


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}
GRAPH = {m: {i for i in imports_of(p) if i in MODULES and i != m} for m, p in MODULES.items()}


def test_no_import_loops():
    """Walk the graph depth-first; a back edge is a loop. The registry may import the stages it registers."""
    graph = {m: deps - ({"curate.stages"} if m == "curate.registry" else set()) for m, deps in GRAPH.items()}
    # a package's __init__ is imported by its submodules implicitly; only explicit edges count
    state: dict[str, int] = {}
    loops: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                loops.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not loops, "import loops:\n" + "\n".join(" → ".join(loop) for loop in loops)


# Lower layers never import higher ones (the registry's import of curate.stages is how it finds stages).
LAYERS = [
    (
        "curate.errors",
        "curate.schema",
        "curate.timeline",
        "curate.audio",
        "curate.manifest",
        "curate.yamlconf",
        "curate.rundir",
        "curate.presets",
    ),
    ("curate.models",),
    ("curate.stages", "curate.registry", "curate.config", "curate.catalog", "curate.stats", "curate.quality"),
    ("curate.runners",),
    ("curate.export", "curate.corrupt", "curate.w2v2", "curate.ablation", "curate.synth"),
    ("curate.testing",),
    ("curate.demo",),
    ("curate.cli",),
]


def layer_of(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return -1


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) >= 0))
def test_no_upward_imports(module):
    allowed = {("curate.registry", "curate.stages")}
    up = sorted(
        d
        for d in GRAPH[module]
        if layer_of(d) > layer_of(module)
        and not any(module == a and (d == b or d.startswith(b + ".")) for a, b in allowed)
    )
    assert not up, f"{module} (layer {layer_of(module)}) imports higher layers: {up}"


def test_nothing_imports_the_demo_or_the_cli():
    """The demo and the CLI are clients of the library: only the CLI's `demo` command starts the demo."""
    for m, deps in GRAPH.items():
        if not m.startswith(("curate.demo", "curate.cli")):
            assert not any(d.startswith(("curate.demo", "curate.cli")) for d in deps), f"{m} imports {deps}"


def test_library_code_does_not_import_test_fakes():
    for m, deps in GRAPH.items():
        if not m.startswith(("curate.testing", "curate.demo", "curate.cli")):
            assert not any(d.startswith("curate.testing") for d in deps), f"{m} imports test helpers"


def test_package_root_is_short_and_files_are_readable():
    root = sorted(p.name for p in PKG.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at the package root: {root}"
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_one_sample_rate():
    owners = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if "\nSAMPLE_RATE = " in p.read_text()]
    assert owners == ["audio.py"], owners


def test_no_merge_conflict_markers_left():
    """A merge that was resolved by hand leaves no ``<<<<<<<``/``>>>>>>>`` lines in code or docs."""
    repo = Path(__file__).resolve().parents[1]
    suffixes = {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".txt", ".sh"}
    skip = {".git", ".venv", "node_modules", "demo_out"}
    bad = []
    for p in repo.rglob("*"):
        if p.suffix in suffixes and p.is_file() and not skip & set(p.relative_to(repo).parts):
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                if line.startswith(("<<<<<<< ", ">>>>>>> ")):
                    bad.append(f"{p.relative_to(repo)}:{n}")
    assert not bad, bad


# The run directory's names (curate/rundir/layout.py owns them): a file name spelled whole anywhere, a folder
# name joined onto a path (``x / "variants"``, ``joinpath("_progress")``) or leading a relative path string.
RUN_FILES = {
    "run.json",
    "recordings.parquet",
    "decisions.parquet",
    "failures.parquet",
    "warnings.parquet",
    "repeats.parquet",
    "stats.json",
    "stats.md",
    "quality.json",
    "plan.json",
    "prepare.json",
    "plan_recordings.parquet",
    "ingest_failures.parquet",
    "ingest_probe_failures.parquet",
    "audio_pass_failures.parquet",
    "curate.log",
}
RUN_DIRS = {"_progress", "variants", "rejected", "scores", "fingerprints", "done", "poison", "running", "probes"}
# Modules whose own output folders are not run directories and reuse one of these words for themselves.
RUN_PATH_ALLOWED: dict[str, set[str]] = {}


def run_path_spellings(path: Path) -> list[str]:
    """Every place in ``path`` that spells a run-directory path, as ``line: text``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def text(node: ast.AST) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    for node in ast.walk(tree):
        s = text(node)
        if s is not None:
            stripped = s.strip("/")
            head = stripped.split("/", 1)[0]
            a_file = stripped in RUN_FILES or ("/" in stripped and stripped.rsplit("/", 1)[-1] in RUN_FILES)
            a_folder = "/" in stripped and head in RUN_DIRS and " " not in stripped
            if a_file or a_folder:
                found.append((node.lineno, s))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and text(node.right) in RUN_DIRS:
            found.append((node.lineno, text(node.right)))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("joinpath", "join"):
            found += [(a.lineno, text(a)) for a in node.args if text(a) in RUN_DIRS]
    return [f"{n}: {s!r}" for n, s in sorted(found)]


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m != "curate.rundir" and not m.startswith("curate.rundir."))
)
def test_only_the_run_directory_spells_its_paths(module):
    """``RunDir`` owns the layout: every other module asks it for paths (add a method there if one is missing)."""
    bad = [
        s for s in run_path_spellings(MODULES[module]) if s.split(": ", 1)[1] not in RUN_PATH_ALLOWED.get(module, ())
    ]
    assert not bad, f"{module} spells run-directory paths (ask curate.rundir.RunDir): {bad}"


def test_the_run_path_rule_catches_spellings(tmp_path):
    """The rule sees the ways a path gets spelled (so the test above can fail)."""
    src = tmp_path / "m.py"
    src.write_text(
        'a = out / "_progress" / "done"\nb = out / "run.json"\nc = f"{root}/variants/seq"\n'
        'd = p.joinpath("scores")\ne = "_progress/plan.json"\nok = stats["variants"]\nmsg = "no run.json here"\n'
    )
    assert [s.split(":")[0] for s in run_path_spellings(src)] == ["1", "1", "2", "3", "4", "5"]
