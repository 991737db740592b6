"""Shared pytest configuration for the Noisy Descent tests."""


def pytest_configure(config):
    # `make test` runs `-m "not built_book and not colab_runtime and not lowest_versions"` first,
    # builds the book, then the marked groups (see the Makefile).
    config.addinivalue_line("markers", "built_book: needs the built HTML book in _build/html (runs after `make book`)")
    config.addinivalue_line("markers", "colab_runtime: executes every chapter in a fresh Colab-like virtual environment")
    config.addinivalue_line("markers", "lowest_versions: runs the unit tests at the lowest dependency versions of code/pyproject.toml")
    config.addinivalue_line("markers", "nbgrader: runs the real nbgrader on the nbgrader export, in its own cached virtual environment")
