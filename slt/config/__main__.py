"""``python -m slt.config``: print the README's config reference table."""
from slt.config._docs import reference_markdown

print(reference_markdown())
