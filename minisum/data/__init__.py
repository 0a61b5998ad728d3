"""Data pipelines for the three training scripts.

Nothing here is imported by `import minisum`: these modules import `datasets` and
`tokenizers` lazily, inside the functions that need them, so the library itself
needs NumPy alone.
"""
