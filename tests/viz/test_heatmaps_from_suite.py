"""The heat maps show the suite's own DCI and MIG matrices when it computed them."""

import numpy as np
import pytest

from tests.metrics.toy import ToySource, mixing_encoder
from vaelab.metrics.suite import SuiteResult, run_suite
from vaelab.viz.heatmaps import FactorMatrices


def test_heat_maps_read_the_suite_matrices_and_its_scores():
    suite = run_suite(ToySource(), mixing_encoder(), 0, ("mig", "dci"), num_train=300,
                      num_test=200)  # fmt: skip
    matrices = FactorMatrices.from_suite(suite)
    assert matrices.importance is suite.importance and matrices.mutual_info is suite.mutual_info
    assert matrices.disentanglement == pytest.approx(suite.values["disent/dci[gbt]/d"])
    assert matrices.completeness == pytest.approx(suite.values["disent/dci[gbt]/c"])
    assert matrices.mig == pytest.approx(suite.values["disent/mig"])


def test_without_both_matrices_the_heat_maps_fit_their_own():
    only_mig = SuiteResult(mutual_info=np.eye(3), entropy=np.ones(3))
    assert FactorMatrices.from_suite(only_mig) is None
