"""``python -m slt.pipeline.config``: print the README's config reference table."""
from slt.pipeline.config._docs import reference_markdown

print(reference_markdown())
