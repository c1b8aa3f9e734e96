"""The transport contract's cases (tests/contract) on aiokafka, under simulation, on the wire.

The same cases run over the sim driver (``test_transport_contract.py``) and
over aiokafka on a real broker (``tests/integration/test_transport_contract.py``);
here they run over the production driver talking to the simulated brokers:
a case that passes on the real broker and fails here is a gap in the wire
mode, one that fails here and passes with the sim driver is a behaviour of
aiokafka the sim driver does not show.
"""

import asyncio

import pytest

import detstream
from detstream.transport.kafka.driver import AIOKafkaTransport
from sim.testing import simulate
from sim.wire.cluster import WireCluster
from tests.contract.cases import APP_SETTINGS, CASES, Backend


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_aiokafka_on_the_wire_keeps_the_contract(case):
    async def main(cluster):
        wire = WireCluster(cluster)
        app = detstream.App("contract", broker="kafka://localhost:9092", **APP_SETTINGS)
        transport = wire.transport_for(app)
        assert isinstance(transport, AIOKafkaTransport)
        backend = Backend(transport, app)
        try:
            await asyncio.wait_for(case(backend), 300)
        finally:
            await backend.close()

    simulate(main, seed=1)
