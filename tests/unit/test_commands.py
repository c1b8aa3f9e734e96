"""@app.command: async functions as CLI subcommands (``python proj.py cmd``, ``-A proj cmd``)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import detstream
from detstream.cli.main import argument, main, option, run_for_app
from detstream.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]

PROJECT = textwrap.dedent('''
    import detstream as faust
    from detstream.cli.main import argument, option

    app = faust.App('cmd-proj', broker='sim://')

    @app.command(
        argument('name'),
        option('--greeting', default='Hello', help='What to say.'),
        option('--loud', is_flag=True),
    )
    async def hello(self, name, greeting, loud):
        """Say hello to NAME."""
        text = f'{greeting}, {name}!'
        self.say(text.upper() if loud else text)

    @app.command()
    async def example():
        """This docstring is used as the command help in --help."""
        print('RUNNING EXAMPLE COMMAND')

    if __name__ == '__main__':
        app.main()
''')


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "cmdproj.py"
    path.write_text(PROJECT)
    return path


def test_command_is_registered_with_help():
    app = detstream.App("cmds")

    @app.command(option("--count", type=int, default=1))
    async def do_things(count):
        """Do COUNT things."""

    assert set(app.commands) == {"do-things"}
    assert app.commands["do-things"].help == "Do COUNT things."


def test_app_main_runs_command_with_options(monkeypatch):
    app = detstream.App("cmds")
    seen = []

    @app.command(argument("name"), option("--flag", default="d"))
    async def mycmd(name, flag):
        """My command."""
        seen.append((name, flag))

    monkeypatch.setattr(sys, "argv", ["proj.py", "mycmd", "--flag", "x", "bob"])
    with pytest.raises(SystemExit) as exit_info:
        run_for_app(app)
    assert exit_info.value.code == 0
    assert seen == [("bob", "x")]


def test_self_parameter_gets_the_command():
    app = detstream.App("cmds")

    @app.command(option("--n", type=int, default=2))
    async def twice(self, n):
        self.say(f"{self.app.conf.id} {n * 2}")

    result = CliRunner().invoke(main, ["twice", "--n", "21"], obj={"app": app})
    assert result.exit_code == 0, result.output
    assert result.output == "cmds 42\n"


def test_dash_a_finds_app_commands_and_help(project, monkeypatch):
    monkeypatch.chdir(project.parent)
    runner = CliRunner()
    result = runner.invoke(main, ["-A", str(project), "hello", "--loud", "--greeting", "hi", "ann"])
    assert result.exit_code == 0, result.output
    assert result.output == "HI, ANN!\n"
    result = runner.invoke(main, ["-A", str(project), "--help"])
    assert "hello" in result.output and "Say hello to NAME." in result.output
    assert "worker" in result.output
    result = runner.invoke(main, ["-A", str(project), "hello", "--help"])
    assert "--greeting" in result.output and "What to say." in result.output


def test_unknown_command_without_app_is_a_usage_error():
    result = CliRunner().invoke(main, ["nosuch"])
    assert result.exit_code == 2 and "No such command 'nosuch'" in result.output


def test_python_proj_py_runs_the_command(project):
    out = subprocess.run(
        [sys.executable, str(project), "example"], capture_output=True, text=True,
        cwd=project.parent, check=False, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "RUNNING EXAMPLE COMMAND\n"
    out = subprocess.run(
        [sys.executable, "-m", "detstream", "-A", "cmdproj", "hello", "world"],
        capture_output=True, text=True, cwd=project.parent, check=False, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello, world!\n"


def test_bad_commands():
    app = detstream.App("cmds")
    with pytest.raises(InvalidArgument, match="@app.command needs an async def function"):
        app.command()(lambda: None)
    with pytest.raises(InvalidArgument, match="options must be detstream.cli.main.option"):
        app.command("--flag")(_noop)

    @app.command(name="dup")
    async def one():
        pass

    with pytest.raises(InvalidArgument, match="command 'dup' is defined twice"):
        app.command(name="dup")(_noop)


async def _noop():
    pass


def test_a_command_sends_without_starting_the_app_as_faust_commands_do():
    """The first send of a command starts the app as a client; the command's end stops it."""
    from detstream.commands import _run
    from sim.testing import simulate

    app = detstream.App("cmd-send", broker="sim://")
    topic = app.topic("greetings", value_type=str)

    async def produce():
        await topic.send(value="hello")
        return app.client_only

    async def main(cluster):
        started_as_client = await _run(app, produce, None, {})
        return started_as_client, app.client_on_demand, [r.value for r in cluster.records("greetings")]

    # a str value under the app's json value_serializer is JSON text, as Faust writes it
    assert simulate(main, seed=1) == (True, False, [b'"hello"'])


def test_outside_a_command_an_app_not_started_still_refuses_to_send():
    from sim.testing import simulate

    app = detstream.App("no-send", broker="sim://")
    topic = app.topic("greetings", value_type=str)

    async def main(cluster):
        with pytest.raises(detstream.errors.ImproperlyConfigured, match="is not started"):
            await topic.send(value="hello")

    simulate(main, seed=1)


DAEMON = textwrap.dedent('''
    import detstream as faust
    from detstream.cli.main import option

    app = faust.App('daemon-proj', broker='sim://')

    @app.command(option('--foo', type=float, default=1.33), daemon=True)
    async def my_daemon(self, foo: float):
        print('STARTING DAEMON', foo, flush=True)
        return

    if __name__ == '__main__':
        app.main()
''')


def test_a_daemon_command_runs_until_a_stop_signal(tmp_path):
    # tasks.rst "Daemon Commands": @app.command(option(...), daemon=True)
    import signal

    path = tmp_path / "daemonproj.py"
    path.write_text(DAEMON)
    proc = subprocess.Popen(
        [sys.executable, str(path), "my-daemon", "--foo", "2"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "STARTING DAEMON 2.0\n"  # returned, and still running
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == ""
