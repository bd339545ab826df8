"""`python -m magenta_release.cli`: the same command line as the `magenta-release` script."""

from magenta_release.cli import main

main()
