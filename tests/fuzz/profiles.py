"""How long the fuzzer runs: ``JOEY_FUZZ=ci`` (the default: ``make test``, bounded, the same
examples on every run) or ``JOEY_FUZZ=long`` (``make fuzz``: random, many more examples, with
the Hypothesis database in ``.fuzz/hypothesis`` kept between runs, so that a failure found once
is tried first on every later run until it is fixed and has become an explicit ``@example``).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[2]
#: The gitignored directory of everything ``make fuzz`` keeps between runs.
FUZZ_DIR = ROOT / ".fuzz"
MODE = os.environ.get("JOEY_FUZZ", "ci")
if MODE not in ("ci", "long"):
    raise RuntimeError(f"JOEY_FUZZ must be 'ci' or 'long', not {MODE!r}")
#: ``make fuzz`` runs the property tests again and again for its time budget; each run draws
#: this many times the examples of ``make test``.
LONG_FACTOR = int(os.environ.get("JOEY_FUZZ_FACTOR", "20"))
#: ``JOEY_FUZZ_EXPLICIT=0`` skips the ``@example`` regressions: what the generated requests
#: find alone (how the net was shown to catch the bugs it was built for).
EXPLICIT = os.environ.get("JOEY_FUZZ_EXPLICIT", "1") != "0"

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
          HealthCheck.filter_too_much]

settings.register_profile(
    "joey-fuzz-ci", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "joey-fuzz-long", deadline=None, print_blob=True, suppress_health_check=_QUIET,
    database=DirectoryBasedExampleDatabase(FUZZ_DIR / "hypothesis"),
)


def fuzz_settings(examples: int) -> settings:
    """The settings of a property test that draws ``examples`` examples in ``make test``."""
    parent = settings.get_profile("joey-fuzz-ci" if MODE == "ci" else "joey-fuzz-long")
    phases = [phase for phase in Phase if EXPLICIT or phase is not Phase.explicit]
    return settings(parent, max_examples=examples if MODE == "ci" else examples * LONG_FACTOR,
                    phases=phases)
