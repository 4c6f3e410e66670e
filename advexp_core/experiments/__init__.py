"""One call per experiment: a frozen config in, a frozen result out (what pages and the CLI call).

Every default of the project is written once, in the config dataclasses of this package.
"""
