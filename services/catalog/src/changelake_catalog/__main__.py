"""``python -m changelake_catalog``: the catalog service, wired in its bootstrap module."""

from changelake_catalog.bootstrap import main

if __name__ == "__main__":
    main()
