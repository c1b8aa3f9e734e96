"""Table ops under at_least_once with the RocksDB store (see table_ops.py)."""

from properties.apps.table_ops import build

app = build("at_least_once", "rocksdb://")
