"""The package's shape, read statically from the source (no import runs): no import cycle among
slt's modules (function-level imports included), imports pointing one way between the layers,
nothing in slt reaching into benchmarks/, experiments/ or tests/, and a public API that resolves."""
import ast
import importlib
from pathlib import Path

SLT = Path(__file__).resolve().parents[1] / "slt"

# the layers, lowest first: a module may import its own layer or a lower one, never a higher one
FOLDER_LAYER = {"kernels": 1, "samplers": 2, "estimators": 3, "pipeline": 4, "cli": 5}
NAMED_LAYER = {   # modules outside the layer folders (longest matching prefix wins)
    "slt._version": 0, "slt.models": 0, "slt.likelihoods": 0, "slt.data": 0,
    "slt.posterior": 1,   # the Problem and its target densities build the kernels' State
    "slt.progress": 0, "slt.setup_jax": 0, "slt.plots": 0,
    "slt.pipeline.config": 4, "slt.pipeline.runs": 4, "slt.pipeline.stages": 4,
    "slt.cli.sweep": 5, "slt.cli.report": 5, "slt.cli.calibrate": 5, "slt.api": 5, "slt.results": 5,
}
OUTSIDE = ("benchmarks", "experiments", "tests", "notebook_util", "build_notebooks")


def modules() -> dict:
    """module name -> (path, is_package) for every .py file under slt/."""
    out = {}
    for path in SLT.rglob("*.py"):
        parts = list(path.relative_to(SLT.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def import_graph() -> tuple[dict, dict]:
    """(module -> the slt modules it imports, module -> the outside names it imports)."""
    mods = modules()

    def owner(name):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph, outside = {}, {}
    for mod, (path, is_pkg) in mods.items():
        package = mod if is_pkg else mod.rpartition(".")[0]
        deps, out = set(), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:   # relative: resolved against this module's package
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                names = [(base, a.name) for a in node.names]
            else:
                continue
            for base, attr in names:
                top = base.split(".")[0]
                if top in OUTSIDE:
                    out.add(base)
                if top != "slt":
                    continue
                full = f"{base}.{attr}" if attr else base
                deps.add(full if full in mods else owner(base))
        deps.discard(None)
        deps.discard(mod)
        graph[mod], outside[mod] = deps, out
    return graph, outside


def layer(mod: str):
    if mod == "slt":   # the package's __init__: the public API, on top of everything
        return 5
    parts = mod.split(".")
    if len(parts) > 1 and parts[1] in FOLDER_LAYER:
        return FOLDER_LAYER[parts[1]]
    for prefix in sorted(NAMED_LAYER, key=len, reverse=True):
        if mod == prefix or mod.startswith(prefix + "."):
            return NAMED_LAYER[prefix]
    return None


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_imports_point_down_the_layers():
    graph, _ = import_graph()
    upward = [f"{m} ({layer(m)}) imports {d} ({layer(d)})" for m, deps in sorted(graph.items())
              for d in sorted(deps) if layer(m) is not None and layer(d) is not None and layer(d) > layer(m)]
    assert upward == []
    if (SLT / "estimators").is_dir():   # once the layer folders exist, every module has a layer
        assert [m for m in graph if layer(m) is None] == []


def test_the_package_never_reaches_benchmarks_experiments_or_tests():
    _, outside = import_graph()
    assert {m: sorted(o) for m, o in outside.items() if o} == {}


def test_public_api_resolves_and_import_stays_cheap():
    import slt

    for name in slt.__all__:
        assert getattr(slt, name) is not None, name
    for name in importlib.import_module("slt.pipeline.config").__all__:
        assert hasattr(importlib.import_module("slt.pipeline.config"), name), name
