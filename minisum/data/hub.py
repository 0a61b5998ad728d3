"""Importing `datasets` quietly.

The scripts draw their own progress bars, and an error must stay one line on stderr, so
the library's "Generating train split" bars and info logs are switched off.
"""


def import_datasets():
    """The `datasets` module, imported on first use (so `import minisum` stays NumPy-only)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # our own message says what failed
    return datasets
