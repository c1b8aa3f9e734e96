"""Guide: "app.main() -- Start the faust command-line program" and "@app.command()"."""

import pytest

from .helpers import python, write_module

COMMAND_PY = """
    # examples/command.py
    import detstream as faust

    app = faust.App('umbrella-command-example', broker='sim://')

    if __name__ == '__main__':
        app.main()
"""

SUBCOMMAND_PY = """
    # examples/command.py
    import detstream as faust

    app = faust.App('example-subcommand', broker='sim://')

    @app.command()
    async def example():
        \"\"\"This docstring is used as the command help in --help.\"\"\"
        print('RUNNING EXAMPLE COMMAND')

    if __name__ == '__main__':
        app.main()
"""


@pytest.fixture
def project(tmp_path):
    def write(source):
        write_module(tmp_path, "examples/command.py", source)
        return tmp_path

    return write


def test_running_the_program_lists_the_available_commands(project):
    out = python("examples/command.py", cwd=project(COMMAND_PY))
    shown = out.stdout + out.stderr  # click shows the help, as a usage error (exit 2) since 8.2
    assert out.returncode in (0, 2), out.stderr
    assert shown.startswith("Usage: command.py [OPTIONS] COMMAND [ARGS]...")
    commands = shown.split("Commands:")[1]
    for name in ("worker", "send", "agents", "tables", "sim"):
        assert f"  {name} " in commands


def test_help_for_a_subcommand(project):
    out = python("examples/command.py", "worker", "--help", cwd=project(COMMAND_PY))
    assert out.returncode == 0, out.stderr
    assert "Usage: command.py worker" in out.stdout and "--loglevel" in out.stdout


def test_a_command_runs_and_its_docstring_is_the_help(project):
    directory = project(SUBCOMMAND_PY)
    out = python("examples/command.py", "example", cwd=directory)
    assert (out.returncode, out.stdout) == (0, "RUNNING EXAMPLE COMMAND\n"), out.stderr
    listing = python("examples/command.py", "--help", cwd=directory).stdout
    assert "example" in listing and "This docstring is used as the command help" in listing


def test_an_unknown_command_is_a_usage_error(project):
    out = python("examples/command.py", "nosuch", cwd=project(SUBCOMMAND_PY))
    assert out.returncode == 2 and "No such command 'nosuch'" in out.stderr
