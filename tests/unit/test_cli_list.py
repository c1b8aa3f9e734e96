"""``detstream agents`` / ``detstream tables`` (cli_list.py): what an app defines."""

import sys

from click.testing import CliRunner

import detstream
from detstream.cli.main import main


def make_app():
    app = detstream.App("listing", broker="sim://")
    app.Table("totals", default=int, help="Totals by account.\nMore text.")
    app.Table("empty")

    @app.agent(app.topic("orders"))
    async def process(stream):
        """Process orders.

        Details that the listing leaves out.
        """
        async for _ in stream:
            pass

    @app.agent(app.channel())
    async def local(stream):
        async for _ in stream:
            pass

    return app


def invoke(*args, app=None):
    return CliRunner().invoke(main, list(args), obj={"app": app} if app else None)


def test_agents_lists_name_topic_and_first_line_of_help():
    result = invoke("agents", app=make_app())
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Agents" and lines[1].split() == ["name", "topic", "help"]
    assert lines[3].split() == ["@local", "<in-memory", "channel>"]
    assert lines[4].split() == ["@process", "orders", "Process", "orders."]


def test_tables_lists_name_changelog_and_help():
    result = invoke("tables", app=make_app())
    assert result.exit_code == 0, result.output
    rows = [line.split(maxsplit=2) for line in result.output.splitlines()[3:]]
    assert rows == [["empty", "listing-empty-changelog"],
                    ["totals", "listing-totals-changelog", "Totals by account."]]


def test_a_target_names_the_app(tmp_path, monkeypatch):
    (tmp_path / "listproj.py").write_text(
        "import detstream\napp = detstream.App('lp')\n"
        "@app.agent()\nasync def hello(stream):\n    async for _ in stream:\n        pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # load() adds the project's directory
    monkeypatch.delitem(sys.modules, "listproj", raising=False)
    result = invoke("agents", str(tmp_path / "listproj.py"))
    sys.modules.pop("listproj", None)
    assert result.exit_code == 0, result.output
    assert "lp-listproj.hello" in result.output


def test_without_an_app_it_says_how_to_name_one():
    result = invoke("agents")
    assert result.exit_code == 2
    assert "name the app" in result.output


def test_json_prints_the_rows_as_objects():
    import json

    app = make_app()
    agents = json.loads(invoke("--json", "agents", app=app).output)
    assert agents[0]["name"] == "@local" and set(agents[0]) == {"name", "topic", "help"}
    tables = json.loads(invoke("--json", "tables", app=app).output)
    assert tables[1] == {"name": "totals", "changelog": "listing-totals-changelog",
                         "help": "Totals by account."}


def test_quiet_silences_what_an_apps_command_says():
    app = detstream.App("saying", broker="sim://")

    @app.command()
    async def hello(self):
        """Say hello."""
        self.say("hello")

    assert invoke("hello", app=app).output == "hello\n"
    assert invoke("-q", "hello", app=app).output == ""
