"""`vault get`: restore a file, a directory tree, or a file to standard output.

Rules (spec/cli.md, "get and where it writes"):
- a file appears at its destination only complete and verified: it is written to a temporary file beside it,
  fsynced, and renamed after the last chunk authenticated; on any failure the temporary file is removed;
- nothing is written outside DEST and never through a link: every directory is opened relative to its parent's
  descriptor with O_NOFOLLOW, and every name was checked when the tree was decoded (no ``/``, ``.``, ``..``);
- links are restored as links, whatever their target;
- owners come back when root restores (names first, as tar), setuid/setgid only with the stored owner, and
  anyone else's restore applies the umask (ownership.py).

resolve.py finds what a name means, restorer.py restores it: files.py writes one file, link or directory,
directory.py a whole tree in batches, durability.py makes what was written durable.
"""

from vault.restore.resolve import destination, resolve, select_version
from vault.restore.restorer import GetResult, RestoreFailed, Restorer, RestoreSkipped

__all__ = ["GetResult", "RestoreFailed", "RestoreSkipped", "Restorer", "destination", "resolve", "select_version"]
