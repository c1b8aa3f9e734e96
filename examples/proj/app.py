"""The App of proj.

``autodiscover=True`` with ``origin='proj'`` imports every module of the
``proj`` package (but ``__main__`` and ``test_*``) when the app is loaded,
so the agents, tables, pages and commands defined in ``proj.users`` and
``proj.orders`` register without this module importing them.
``autodiscover=['proj.users', 'proj.orders']`` would import just those.
"""

import detstream as faust

app = faust.App(
    "proj",
    version=1,
    autodiscover=True,
    origin="proj",  # imported name for this project (import proj -> "proj")
    broker="kafka://localhost:9092",
    topic_partitions=4,
    # exact counts even when the simulator kills a worker mid-stream
    processing_guarantee="exactly_once",
)


def main() -> None:
    """``console_scripts`` entry point: ``proj = proj.app:main``."""
    app.main()
