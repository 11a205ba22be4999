"""The progress fixtures (a hierarchy, enrolled officials) serve the push tests too."""

from tests.progress.conftest import enrol, tree

__all__ = ["enrol", "tree"]
