"""Example code locations that use magenta-release from the outside."""
