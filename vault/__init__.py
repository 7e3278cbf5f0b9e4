"""vault: a secure, deduplicating, encrypted file vault. See docs/design.md for the map and docs/api.md for
the Python API: ``vault.open`` returns a :class:`Session` (store, restore, list), ``vault.init`` makes a vault."""

from vault.session import Session
from vault.session import create_vault as init
from vault.session import open_session as open  # vault.open, like tarfile.open

__version__ = "0.1.0"
__all__ = ["Session", "__version__", "init", "open"]
