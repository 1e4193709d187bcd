"""The one error type of the data loaders."""

from __future__ import annotations

__all__ = ["DatasetError", "DatasetWarning"]


class DatasetError(ValueError):
    """A dataset file that cannot be used: the message names the file and the field at fault."""

    def __init__(self, path: object, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}")
        self.path = str(path)
        self.field = field
        self.problem = problem

    def __reduce__(self):  # survives pickling, e.g. out of a DataLoader worker
        return type(self), (self.path, self.field, self.problem)


class DatasetWarning(UserWarning):
    """A dataset record that was dropped (the message names the file, counts the records and
    gives the first one); the rest of the file is used."""
