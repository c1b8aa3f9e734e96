"""Standby replicas (Faust's ``table_standby_replicas``) with RocksDB tables.

One worker is killed; the other already keeps a standby copy of its table
partitions, so taking them over replays only the changelog tail the standby
had not read yet, instead of the whole changelog.
"""

from tests.scenarios._standby import build

app, sim_scenario = build(replicas=1, store="rocksdb://")
