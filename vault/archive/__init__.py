"""`vault put`: store files, directory trees and standard input as new item versions.

scan.py finds what to store (and what is unchanged since the previous version); store.py reads it into
chunks, builds the trees and commits one version record per item; result.py is what it reports; tar.py takes a
tar stream instead of a directory.
"""

from vault.archive.result import PutResult
from vault.archive.store import Putter

__all__ = ["PutResult", "Putter"]
