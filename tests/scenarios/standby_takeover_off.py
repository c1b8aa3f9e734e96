"""``standby_takeover`` without standbys (the baseline): the new owner replays every record."""

from tests.scenarios._standby import build

app, sim_scenario = build(replicas=0, store="rocksdb://")
