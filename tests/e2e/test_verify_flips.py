"""Most of verify's setting flips, in batches (test_verify.py has the first two).

A module of its own gets a deployment of its own: the two halves run on two
test workers at once instead of one after the other.
"""

from __future__ import annotations

import pytest

from tests.e2e import test_verify as verify_module
from tests.e2e.test_verify import (
    BATCHES,
    FLIP_BY_NAME,
    HALF,
    PolicyDeployment,
    _batch_ids,
    check_flips,
)

pytestmark = pytest.mark.e2e

policy_pair = verify_module.policy_pair  # the module-scoped deployment, one for this module


@pytest.mark.parametrize("batch", BATCHES[HALF:], ids=_batch_ids(BATCHES[HALF:]))
def test_each_setting_flips_what_verify_observes(
    policy_pair: PolicyDeployment, batch: tuple[str, ...]
) -> None:
    check_flips(policy_pair, [FLIP_BY_NAME[name] for name in batch])
