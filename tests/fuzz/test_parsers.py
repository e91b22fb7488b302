"""The parser fuzz targets (tests/fuzz/targets.py), each over its seeds and Hypothesis-drawn
bytes. ``make fuzz`` runs the same targets coverage-guided under atheris."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.targets import SEEDS, TARGETS


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_seeds(name: str) -> None:
    for seed in SEEDS[name]:
        TARGETS[name](seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_any_bytes(name: str) -> None:
    seeds = st.sampled_from(SEEDS[name])
    mutated = st.builds(lambda seed, at, junk: seed[:at] + junk + seed[at:], seeds,
                        st.integers(0, 200), st.binary(max_size=16))

    @given(st.binary(max_size=300) | mutated)
    @fuzz_settings(150)
    def run(data: bytes) -> None:
        TARGETS[name](data)

    run()
