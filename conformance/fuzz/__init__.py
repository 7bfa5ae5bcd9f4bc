"""Differential fuzzing: hypothesis explores layer configurations, every framework runs
each one in its worker, and every new cause of divergence is shrunk to a minimal case and
written as a spec file (``conformance fuzz``).

Modules: ``generate`` (configurations as spec documents), ``cause`` (what a finding is),
``lanes`` (the frameworks' workers), ``search`` (hypothesis: explore and shrink),
``crosscheck`` (frameworks compared with each other), ``write`` (spec files and summary),
``command`` (the CLI). Importing this package imports neither hypothesis nor a framework.
"""
