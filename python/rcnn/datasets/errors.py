"""The one error a dataset raises for a missing, unreadable or malformed file: its message is
one line that names the file and what is wrong (the tools print it and exit 2)."""
from __future__ import annotations


class DatasetError(Exception):
    """A dataset file is missing, unreadable or malformed."""
