"""Input for Faust's django example under `detstream sim`: an account to add, one to disable.

Nothing in the example feeds its agents (a Django view or a shell would). Fed,
each agent calls Django's synchronous ORM inside its ``async for``, which
Django refuses in async code (``SynchronousOnlyOperation``), in Faust as here:
the test checks that this is what the agents meet, before any database is
opened (docs/faust-differences.md, "Django").
"""


def sim_scenario(sim):
    sim.producer("django-proj-accounts.agents.add_account",
                 [{"name": "ann", "score": 1.5, "active": True,
                   "__faust": {"ns": "accounts.agents.AccountRecord"}}], name="add")
    sim.producer("django-proj-accounts.agents.disable_account", [1], name="disable")
