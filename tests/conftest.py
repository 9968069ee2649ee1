"""Shared fixtures: one micro synthetic data set per test session (about 3 s to render)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def micro_root(tmp_path_factory):
    """4 identities (S004 held out), neutral/happy/sad, one short sentence, 64 px: enough for both trainers."""
    from stccl.data import synth

    root = tmp_path_factory.mktemp("micro_data") / "micro"
    synth.synthesize(root, synth.make_config("tiny", n_identities=4, n_test=1, n_sentences=1, syllables=(3, 3),
                                             emotions=("neutral", "happy", "sad"), workers=1),
                     seed=5, progress=False)
    return root
