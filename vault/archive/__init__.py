"""`vault put`: store files, directory trees and standard input as new item versions.

scan.py finds what to store (and what is unchanged since the previous version); store.py reads it into
chunks, builds the trees and commits one version record per item.
"""

from vault.archive.store import PutResult, Putter

__all__ = ["PutResult", "Putter"]
