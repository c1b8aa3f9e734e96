"""The Django fixup with Django (detstream/fixups/django.py): a Faust App in a Django project.

Each test runs a small Django project (written to a temporary directory) in a
process of its own: Django's settings and app registry are set up once per
process, and a project sets ``DJANGO_SETTINGS_MODULE``, which would turn the
fixup on for every App made afterwards in the test session.

Skipped, loudly, without Django (it is in the ``dev`` extra).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

try:
    import django  # noqa: F401 - only whether it is installed
except ImportError:  # pragma: no cover - the dev extra installs it
    REASON = "SKIPPED LOUDLY: Django is not installed (pip install -e '.[dev]' installs it)"
    warnings.warn(REASON, stacklevel=1)
    pytest.skip(REASON, allow_module_level=True)

#: a Django project (settings ``djsettings``, the app ``shop``) and its Faust app ``shopapp``.
PROJECT = {
    "djsettings.py": """
        import os

        SECRET_KEY = "not-a-secret"
        DEBUG = os.environ.get("SHOP_DEBUG") == "1"
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        USE_TZ = True
    """,
    "shop/__init__.py": "",
    "shop/apps.py": """
        from django.apps import AppConfig

        class ShopConfig(AppConfig):
            name = "shop"
    """,
    "shop/models.py": """
        from django.db import models

        LOADS = []
        LOADS.append(1)

        class Order(models.Model):
            name = models.CharField(max_length=50)
            quantity = models.IntegerField(default=1)
    """,
    "shop/agents.py": """
        from asgiref.sync import sync_to_async

        from shopapp.app import app
        from .models import Order

        @app.agent()
        async def record(names):
            # Django's async ORM, and sync_to_async: the ORM from async code
            async for name in names:
                order = await Order.objects.acreate(name=name, quantity=2)
                again = await Order.objects.aget(pk=order.pk)
                count = await sync_to_async(Order.objects.count)()
                yield [again.pk, again.name, again.quantity, count]

        @app.agent()
        async def record_sync(names):
            # as Faust's django example does: the synchronous ORM inside the agent
            async for name in names:
                yield Order.objects.create(name=name).pk
    """,
    "shopapp/__init__.py": "",
    "shopapp/app.py": """
        import os

        import detstream

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsettings")

        app = detstream.App("shop", broker="sim://", autodiscover=True, origin="shopapp")
    """,
}

#: creates the Order table in the in-memory database of the thread sync_to_async runs in.
CREATE_TABLES = """
from asgiref.sync import sync_to_async
from django.db import connection

def create_tables():
    from shop.models import Order

    with connection.schema_editor() as editor:
        editor.create_model(Order)

make_tables = sync_to_async(create_tables)
"""


def run_project(tmp_path: Path, code: str, **env: str) -> dict:
    """Run ``code`` in a fresh process from the project's directory; its last line is JSON."""
    for relative, source in PROJECT.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ.update(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}", PYTHONHASHSEED="0", **env)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                            env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return {**json.loads(result.stdout.splitlines()[-1]), "stderr": result.stderr}


def test_the_fixup_sets_django_up_and_discovers_the_installed_apps(tmp_path):
    out = run_project(tmp_path, """
        import json, logging, sys, warnings
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        warnings.simplefilter("always")
        from detstream.loader import load

        with warnings.catch_warnings(record=True) as caught:
            _, app = load("shopapp.app")
        from django.apps import apps

        print(json.dumps({
            "ready": apps.ready,
            "fixups": [type(f).__module__ for f in app.fixups],
            "walked": list(app.fixups[0].autodiscover_modules()),
            "agents": sorted(app.agents),
            "contrib_walked": "django.contrib.auth.admin" in sys.modules,
            "warnings": [str(w.message) for w in caught],
        }))
    """, SHOP_DEBUG="1")
    assert out["ready"] is True
    assert out["fixups"] == ["detstream.fixups.django"]
    assert out["walked"] == ["shop"]  # the project's apps; Django's own are not walked
    assert out["contrib_walked"] is False
    assert out["agents"] == ["shop.agents.record", "shop.agents.record_sync"]
    assert any("settings.DEBUG is on" in w for w in out["warnings"]), out["warnings"]
    # its system checks ran and what they report is logged (no DEFAULT_AUTO_FIELD: W042)
    assert "Django system check: shop.Order: (models.W042)" in out["stderr"]


def test_isolated_loads_share_the_models_and_each_get_the_agents(tmp_path):
    out = run_project(tmp_path, """
        import json, sys, warnings
        warnings.simplefilter("error", RuntimeWarning)  # Django: "Model ... already registered"
        from detstream.loader import load_isolated

        apps = [load_isolated("shopapp.app")[1] for _ in range(3)]
        print(json.dumps({
            "agents": [sorted(app.agents) for app in apps],
            "models_loaded": sys.modules["shop.models"].LOADS,
            "agents_module_left": "shop.agents" in sys.modules,
        }))
    """)
    assert out["agents"] == [["shop.agents.record", "shop.agents.record_sync"]] * 3
    assert out["models_loaded"] == [1]
    assert out["agents_module_left"] is False


def test_an_agent_uses_the_async_orm_and_the_sync_orm_is_refused_in_async_code(tmp_path):
    out = run_project(tmp_path, CREATE_TABLES + """
import asyncio, json
from detstream.loader import load

_, app = load("shopapp.app")

async def main():
    await make_tables()
    async with app.agents["shop.agents.record"].test_context() as agent:
        await agent.put("apple")
        await agent.put("pear")
        results = list(agent.results.values())
    async with app.agents["shop.agents.record_sync"].test_context() as agent:
        try:
            await agent.put("plum")
            refused = None
        except Exception as exc:
            refused = [type(exc).__name__, str(exc)]
    return results, refused

results, refused = asyncio.run(main())
print(json.dumps({"results": results, "refused": refused}))
""")
    assert out["results"] == [[1, "apple", 2, 1], [2, "pear", 2, 2]]
    # Django refuses its synchronous ORM in async code, in Faust as here
    assert out["refused"][0] == "SynchronousOnlyOperation"
    assert "sync_to_async" in out["refused"][1]


def test_under_the_simulator_the_orm_is_refused_as_real_io(tmp_path):
    out = run_project(tmp_path, """
        import json
        from detstream.loader import load
        from sim.testing import run_sandboxed

        _, app = load("shopapp.app")

        async def main():
            async with app.agents["shop.agents.record"].test_context() as agent:
                try:
                    await agent.put("apple")
                except Exception as exc:
                    return [type(exc).__name__, str(exc)]

        print(json.dumps({"refused": run_sandboxed(main, seed=1)}))
    """)
    name, message = out["refused"]
    assert name == "RealIOForbidden"
    assert "loop.run_in_executor()" in message  # sync_to_async runs the query in a thread
