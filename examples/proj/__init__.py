"""proj: the Faust guide's medium/large project layout, on detstream.

::

    proj/
        __init__.py      this file: `from proj import app` finds the App
        __main__.py      `python -m proj worker -l info` (app.main())
        app.py           the App, with autodiscover=True and origin='proj'
        scenario.py      sim_scenario: input clients and checks for `detstream sim`
        users/           models, agents, views, commands of users
        orders/          models, agents, views of orders (orders send to a users agent)

Nothing here imports ``proj.users`` or ``proj.orders``: autodiscovery does,
when a worker, ``app.main()`` or ``detstream sim`` loads the app. Run it on
the simulator (from the repository root)::

    detstream sim examples/proj --seed 1

or against Kafka, with ``examples`` on ``PYTHONPATH``::

    PYTHONPATH=examples python -m proj worker -l info
    PYTHONPATH=examples python -m proj add-user u1 Ann
"""

from .app import app
from .scenario import sim_scenario

__all__ = ["app", "sim_scenario"]
