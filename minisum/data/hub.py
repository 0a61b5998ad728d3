"""Importing `datasets` quietly, and reading its errors.

The scripts draw their own progress bars, and an error must stay one line on stderr, so
the library's "Generating train split" bars and info logs are switched off.
"""


def import_datasets():
    """The `datasets` module, imported on first use (so `import minisum` stays NumPy-only)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # our own message says what failed
    return datasets


def first_line(error):
    """First line of the innermost cause: `datasets` wraps the error that says what failed
    (for a local file, the parser's message naming the bad line)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
