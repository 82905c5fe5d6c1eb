"""The README documents every config key and shows the two quickstart commands."""
from pathlib import Path

from slt import config

README = Path(__file__).parent.parent / "README.md"


def test_readme_config_reference_is_complete():
    text = README.read_text()
    missing = [key for key, _, _ in config.describe() if f"`{key}`" not in text]
    assert not missing, f"README config reference lacks {missing}; regenerate with python -m slt.config"


def test_readme_quickstart_commands():
    text = README.read_text()
    assert "slt run" in text and "pytest" in text and "pip install -e" in text
