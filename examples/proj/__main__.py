"""The entry point: ``python -m proj worker -l info``, ``python -m proj --help``."""

from proj.app import app

app.main()
