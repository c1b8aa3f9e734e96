"""The transport contract's cases (tests/contract) on the sim driver."""

import pytest

import detstream
from sim.driver import SimTransport
from sim.testing import simulate
from tests.contract.cases import APP_SETTINGS, CASES, Backend


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_sim_driver_keeps_the_contract(case):
    async def main(cluster):
        app = detstream.App("contract", broker="sim://", **APP_SETTINGS)
        backend = Backend(SimTransport(cluster=cluster, name="contract", app=app), app)
        try:
            await case(backend)
        finally:
            await backend.close()

    simulate(main, seed=1)
