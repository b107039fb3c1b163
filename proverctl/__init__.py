"""proverctl: run open neural theorem provers on Lean 4 files."""

__version__ = "0.1.0"
