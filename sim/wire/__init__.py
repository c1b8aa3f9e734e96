"""The simulated cluster on the Kafka wire: aiokafka itself, run inside ``detstream sim``.

The sim driver (``sim/driver.py``) stands in for the Kafka client, so the
production path (``detstream/transport/kafka``, aiokafka's fetcher, sender,
coordinator and retries) never runs under simulation. Here the simulated
brokers speak the Kafka protocol instead: an aiokafka connection to a
simulated broker's address gets an in-memory transport on the virtual loop
(no socket, no thread), each request is decoded with aiokafka's own protocol
structs, served by the simulated cluster, and answered after the network's
latency. Modules:

- ``codec``: request and response frames (header, body, version lookup).
- ``connection``: the in-memory transport a connection gets, and the loop hook.
- ``broker``: what each API does against the ``SimCluster``.

Issue 12 builds this in steps; the APIs served so far are listed in
``broker.SERVED`` (an API outside it closes the connection, naming it).
"""
