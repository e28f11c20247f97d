"""`python -m lorawiz`: the same entry point as the `lorawiz` console script."""

from lorawiz.cli import main

if __name__ == "__main__":
    main()
