"""A reference set is identified by what defines it, never by hashes of float sums (whose last bits change with
the CPU's kernels): sums perturbed in the last bits compare equal, another n, seed, size or file is refused by name."""
from __future__ import annotations

import copy
import shutil

import pytest

from bench.metrics.fvd import FVD, ReferenceStats, procedural_reference, save_reference_stats, load_reference_stats
from bench.metrics.frechet import FeatureSums
from bench.metrics.fvd_detectors import SmokeDetector
from bench.metrics.fvd_protocol import smoke_protocol
from bench.report.records import differences


@pytest.fixture(scope="module")
def setup():
    det = SmokeDetector(seed=0)
    proto = smoke_protocol(8)
    return det, proto, procedural_reference(det, proto, n=6, seed=0, height=32, width=32)


def _record(fvd_description: dict) -> dict:
    return {"methods": {"m": {"metrics": {"fvd": {**fvd_description, "value": 1.0}}}}}


def _describe(det, proto, ref: ReferenceStats) -> dict:
    return FVD(det, proto, ref).describe()


def _perturbed(ref: ReferenceStats, rel: float) -> ReferenceStats:
    out = copy.copy(ref)
    out.sums = FeatureSums(ref.sums.sum * (1 + rel), ref.sums.outer * (1 + rel), ref.sums.count)
    return out


def test_last_bit_drift_in_the_sums_is_comparable(setup):
    det, proto, ref = setup
    a = _describe(det, proto, ref)
    b = _describe(det, proto, _perturbed(ref, 1e-9))
    assert a["reference"]["identity"] == b["reference"]["identity"]
    assert differences(_record(a), _record(b)) == []


def test_a_different_reference_set_is_refused_naming_the_field(setup):
    det, proto, ref = setup
    a = _record(_describe(det, proto, ref))
    other_seed = _record(_describe(det, proto, procedural_reference(det, proto, n=6, seed=1, height=32, width=32)))
    other_n = _record(_describe(det, proto, procedural_reference(det, proto, n=5, seed=0, height=32, width=32)))
    assert any(d.startswith("fvd reference seed 0 vs 1") for d in differences(a, other_seed))
    assert any(d.startswith("fvd reference n 6 vs 5") for d in differences(a, other_n))


def test_same_identity_but_other_statistics_is_refused(setup):
    """A generator changed without bumping its version: the identity matches, the statistics do not."""
    det, proto, ref = setup
    diff = differences(_record(_describe(det, proto, ref)), _record(_describe(det, proto, _perturbed(ref, 1e-2))))
    assert diff and all("reference statistic" in d for d in diff)


def test_a_reference_file_is_identified_by_its_sha256_not_its_path(setup, tmp_path):
    det, proto, ref = setup
    save_reference_stats(ref, tmp_path / "a" / "ref.safetensors")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "ref.safetensors", tmp_path / "b" / "ref.safetensors")  # the same file elsewhere
    save_reference_stats(_perturbed(ref, 1e-9), tmp_path / "c" / "ref.safetensors")
    a, b, c = (_record(_describe(det, proto, load_reference_stats(tmp_path / d / "ref.safetensors", proto, det)))
               for d in "abc")
    assert differences(a, b) == []
    # a file is its bytes: another file is another reference, even if its numbers are nearly equal
    assert any(d.startswith("fvd reference sha256") for d in differences(a, c))
