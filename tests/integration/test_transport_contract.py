"""The transport contract's cases (tests/contract) on aiokafka against a real broker."""

import asyncio
import secrets

import pytest

import detstream
from detstream.transport.kafka.driver import AIOKafkaTransport
from tests.contract.cases import APP_SETTINGS, CASES, Backend


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_kafka_driver_keeps_the_contract(case, kafka_bootstrap):
    url = f"kafka://{kafka_bootstrap}"
    app = detstream.App(f"contract-{secrets.token_hex(4)}", broker=url, **APP_SETTINGS)

    async def main():
        backend = Backend(AIOKafkaTransport(url, app=app), app)
        try:
            await asyncio.wait_for(case(backend), 90)
        finally:
            await backend.close()

    asyncio.run(main())
