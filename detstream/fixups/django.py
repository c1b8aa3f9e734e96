"""Faust's Django fixup: a Faust App living in a Django project.

Enabled when the environment variable ``DJANGO_SETTINGS_MODULE`` is set and
Django can be imported (set without Django: a warning, and not enabled), as
in Faust. An enabled fixup:

- **sets Django up** (``django.setup()``: the settings read, the installed
  apps and their models imported) before autodiscovery and before a worker
  or a command runs, so agents can use the ORM; with ``settings.DEBUG`` on it
  warns that Django then keeps every SQL query in memory;
- **adds the installed apps to autodiscovery** (with ``autodiscover=True`` or
  a list): the packages of ``INSTALLED_APPS`` as Django's app registry names
  them (a custom ``AppConfig``'s ``name`` too), so ``accounts/agents.py`` of
  the app ``accounts`` registers its agents. Django's own apps
  (``django.contrib.*``) are left out: they define no agents, and walking them
  would import every module of the admin in every worker;
- **runs Django's system checks** before a worker or a command, and logs what
  they report (Faust ran them and dropped the result);
- **keeps the models modules imported for the whole process**
  (``shared_modules``): Django's app registry holds one class per model per
  process, and the simulator, which imports a project afresh for every worker
  it starts, must not define them twice.

``django.setup()`` runs once per process: Django's app registry is filled
once, and a second call would only configure logging again.

Agents are coroutines, and Django refuses its synchronous ORM in async code
(``SynchronousOnlyOperation``), in Faust as here: an agent uses Django's
async ORM (``await Account.objects.acreate(...)``) or ``sync_to_async``.
Both run the query in a thread, which the simulator refuses
(``RealIOForbidden``): a database is outside the simulated world. See
docs/faust-differences.md.

Django is imported only when the fixup runs, never by ``import detstream``.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Iterable
from typing import Any

from detstream.errors import DetstreamWarning

from . import base

__all__ = ["Fixup"]

logger = logging.getLogger(__name__)

#: the environment variable naming the Django settings module; set, it enables the fixup.
SETTINGS_VARIABLE = "DJANGO_SETTINGS_MODULE"

NOT_INSTALLED = (
    f"{SETTINGS_VARIABLE} is set but Django cannot be imported: the Django fixup is off "
    "(install Django, or unset the variable)"
)
DEBUG_ENABLED = (
    "Django's settings.DEBUG is on: Django then keeps every SQL query in memory, which a "
    "long-running worker never gives back; turn DEBUG off in production"
)


def _is_djangos_own(app_name: str) -> bool:
    return app_name == "django" or app_name.startswith("django.")


class Fixup(base.Fixup):
    """The Django fixup (Faust's ``faust.fixups.django.Fixup``); see the module's docstring."""

    def enabled(self) -> bool:
        if not os.environ.get(SETTINGS_VARIABLE):
            return False
        try:
            import django  # noqa: F401 - only whether it imports
        except ImportError:
            warnings.warn(NOT_INSTALLED, DetstreamWarning, stacklevel=2)
            return False
        return True

    def autodiscover_modules(self) -> Iterable[str]:
        """The installed apps' packages, Django's own left out (Django is set up first)."""
        self.setup()
        return [config.name for config in self.apps.get_app_configs()
                if not _is_djangos_own(config.name)]

    def on_worker_init(self) -> None:
        """Set Django up, then run its system checks and log what they report."""
        self.setup()
        from django.core.checks import run_checks

        for message in run_checks():
            level = logging.ERROR if message.is_serious() else logging.WARNING
            logger.log(level, "Django system check: %s", message)

    def shared_modules(self) -> Iterable[str]:
        """The models modules of the installed apps (once Django is set up)."""
        if not self.apps.ready:
            return []
        return [config.models_module.__name__ for config in self.apps.get_app_configs()
                if config.models_module is not None]

    def setup(self) -> None:
        """``django.setup()`` unless Django's app registry is ready; warn about ``DEBUG``."""
        if not self.apps.ready:
            import django

            django.setup()
        if self.settings.DEBUG:
            warnings.warn(DEBUG_ENABLED, DetstreamWarning, stacklevel=1)

    @property
    def apps(self) -> Any:
        """Django's app registry (``django.apps.apps``)."""
        return importlib.import_module("django.apps").apps

    @property
    def settings(self) -> Any:
        """Django's settings (``django.conf.settings``)."""
        return importlib.import_module("django.conf").settings
