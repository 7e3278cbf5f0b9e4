"""``python -m vault``."""

from vault.cli import main

if __name__ == "__main__":
    main()
