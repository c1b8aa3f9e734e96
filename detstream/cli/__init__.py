"""The ``detstream`` command line: worker, sim, send, list and the app's own commands."""
