"""The fast tier (`make test-fast`): runlane's contract, store and dispatcher checked
in this process, with no server subprocess, in well under a minute.

A package (unlike tests/ itself), so its conftest and modules get names of their own
(`fast.conftest`) and never shadow the root conftest that cluster.py imports.
"""
