"""Most of verify's setting flips (test_verify.py has the first few and the other tests).

A module of its own gets a deployment of its own: the two halves run on two
test workers at once instead of one after the other.
"""

from __future__ import annotations

import pytest

from tests.e2e import test_verify as verify_module
from tests.e2e.test_verify import FLIPS, HALF, Flip, PolicyDeployment, check_flip

pytestmark = pytest.mark.e2e

policy_pair = verify_module.policy_pair  # the module-scoped deployment, one for this module


@pytest.mark.parametrize("flip", FLIPS[HALF:], ids=[f.name for f in FLIPS[HALF:]])
def test_each_setting_flips_what_verify_observes(policy_pair: PolicyDeployment, flip: Flip) -> None:
    check_flip(policy_pair, flip)
