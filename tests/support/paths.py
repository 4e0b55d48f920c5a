"""Where the repository is, for the tests and their helpers (no tests here)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
