"""Cross-framework conformance kit for the train/eval semantics of BatchNorm and Dropout.

Importing this package imports no framework: only the adapters in
``conformance.adapters.<framework>`` do, and only inside their own worker process.
"""

__version__ = "0.1.0"

RESULTS_SCHEMA = "conformance.results/1"
SPEC_VERSION = 1
