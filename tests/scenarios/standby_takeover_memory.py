"""``standby_takeover`` with memory tables: the standby's keys are copied into the table."""

from tests.scenarios._standby import build

app, sim_scenario = build(replicas=1, store="memory://")
