"""Input for Faust's examples/tableofset.py under `detstream sim` (its own input is CLI commands).

People join places (one topic) and some leave later (another): the SetTable
must hold who stayed, and, without crashes, not who left (after a crash a
replayed join may come after its leave: the two topics are not ordered).
"""

LOCATIONS = ["paris", "oslo", "lima"]
PEOPLE = [f"person{i}" for i in range(18)]
JOINS = [(LOCATIONS[i % 3], name) for i, name in enumerate(PEOPLE)]
LEAVES = JOINS[::3]


def sim_scenario(sim):
    sim.topic("people_joining2", partitions=4)
    sim.topic("people_leaving2", partitions=4)
    sim.producer("people_joining2", JOINS, keyed=True, every=0.1, name="joining")
    sim.producer("people_leaving2", LEAVES, keyed=True, start=10.0, every=0.1, name="leaving")

    @sim.check
    def who_is_where(result):
        table = result.table("people")
        stayed = {}
        for location, name in JOINS:
            if (location, name) not in LEAVES:
                stayed.setdefault(location, set()).add(name)
        for location, names in stayed.items():
            assert names <= set(table.get(location, ())), (location, table.get(location))
        if not result.crashes:  # a replayed join may follow its leave after a crash
            for location, name in LEAVES:
                assert name not in table.get(location, ()), (location, name)
