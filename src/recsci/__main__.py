"""``python -m recsci`` is the same as the ``recsci`` command."""

from recsci.cli import main

if __name__ == "__main__":
    main()
