"""The README documents every config key and shows the two quickstart commands."""
from pathlib import Path

from slt.pipeline import config

README = Path(__file__).parent.parent / "README.md"


def test_readme_config_reference_is_complete():
    text = README.read_text()
    missing = [key for key, _, _ in config.describe() if f"`{key}`" not in text]
    assert not missing, f"README config reference lacks {missing}; regenerate with python -m slt.pipeline.config"


def test_readme_quickstart_commands():
    text = README.read_text()
    assert "slt run" in text and "pytest" in text and "pip install -e" in text


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_your_own_model_runs_as_written(tmp_path, monkeypatch):
    """The README's "Your own model" code blocks, executed in order as they stand (plain JAX,
    then Equinox) in a fresh directory; the runs they write are complete and hold every stage."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", _section("Your own model"), re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(blocks[0], "README.md: Your own model (1)", "exec"), scope)
    run = scope["run"]
    assert run.complete and run.summary["likelihood"] == "bernoulli"
    fe, llc = run.summary["free_energy"], run.summary["llc"]
    assert fe["ti"] is not None and fe["stepping_stone"] is not None and llc["mean"] is not None
    # ti and stepping stone estimate the same F_n
    gap = abs(fe["ti"] - fe["stepping_stone"])
    assert gap < 4 * (fe["ti_stderr"] ** 2 + fe["stepping_stone_stderr"] ** 2) ** 0.5 + 0.05
    assert {"trace_loss", "free_energy", "llc_traces"} <= set(run.figures)
    exec(compile(blocks[1], "README.md: Your own model (2)", "exec"), scope)
    run2 = scope["run"]
    assert run2.complete and run2.path.name == "equinox" and run2.summary["d"] == run.summary["d"] == 13
