"""``detstream completion``: click's completion script for the shell $SHELL names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from detstream.cli.completion import completion_var
from detstream.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str, env: dict[str, str | None]) -> object:
    return CliRunner().invoke(main, list(args), env=env, prog_name="detstream")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_prints_what_click_prints_for_the_shell_in_shell(shell: str) -> None:
    result = invoke("completion", env={"SHELL": f"/usr/bin/{shell}"})
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    # the same script as click's own ``_DETSTREAM_COMPLETE={shell}_source detstream``
    direct = invoke(env={"SHELL": None, "_DETSTREAM_COMPLETE": f"{shell}_source"})
    assert result.output == direct.output  # type: ignore[attr-defined]
    assert f"_DETSTREAM_COMPLETE={shell}_complete" in result.output.replace('"', "")  # type: ignore[attr-defined]


def test_shell_option_overrides_shell_and_pwsh_is_powershell() -> None:
    result = invoke("completion", "--shell", "zsh", env={"SHELL": "/bin/bash"})
    assert "compdef" in result.output  # type: ignore[attr-defined]
    result = invoke("completion", env={"SHELL": "/usr/local/bin/pwsh"})
    assert result.exit_code == 0 and "Register-ArgumentCompleter" in result.output  # type: ignore[attr-defined]


def test_an_unsupported_shell_is_a_usage_error_naming_the_supported_ones() -> None:
    result = invoke("completion", env={"SHELL": "/bin/tcsh"})
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "no completion for shell 'tcsh' (from $SHELL=/bin/tcsh)" in result.output  # type: ignore[attr-defined]
    assert "supported: bash, fish" in result.output  # type: ignore[attr-defined]
    result = invoke("completion", env={"SHELL": None})
    assert result.exit_code == 2 and "$SHELL is not set" in result.output  # type: ignore[attr-defined]
    assert "--shell" in result.output  # type: ignore[attr-defined]


def test_the_script_answers_commands_and_options_in_bash(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash here")
    entry = shutil.which("detstream", path=os.path.dirname(sys.executable))
    if entry is None:
        pytest.skip("no detstream console script next to this interpreter")
    script = textwrap.dedent("""
        eval "$(detstream completion)"
        complete -p detstream
        ask() { COMPREPLY=(); COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ));
                _detstream_completion detstream; echo "${COMPREPLY[*]}"; }
        ask detstream wor
        ask detstream sim --faust
    """)
    env = {**os.environ, "SHELL": "/bin/bash", "PYTHONPATH": str(REPO),
           "PATH": f"{os.path.dirname(entry)}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONHASHSEED", None)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120, check=True).stdout.splitlines()
    assert out[0] == "complete -o nosort -F _detstream_completion detstream"
    assert out[1] == "worker"
    assert out[2].split() == ["--faust-compat", "--faust-compat-force"]


def test_a_project_run_as_a_script_completes_under_its_own_name(tmp_path: Path) -> None:
    project = tmp_path / "completed_proj.py"
    project.write_text(textwrap.dedent("""
        import detstream

        app = detstream.App("completed-proj", broker="sim://")

        @app.command()
        async def hello():
            '''Say hello.'''

        if __name__ == "__main__":
            app.main()
    """))
    env = {**os.environ, "SHELL": "/bin/bash", "PYTHONPATH": str(REPO)}
    script = subprocess.run([sys.executable, str(project), "completion"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120, check=True).stdout
    assert completion_var("completed_proj.py") == "_COMPLETED_PROJ_PY_COMPLETE"
    assert "_COMPLETED_PROJ_PY_COMPLETE=bash_complete" in script
    answer = subprocess.run(
        [sys.executable, str(project)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**env, "_COMPLETED_PROJ_PY_COMPLETE": "bash_complete",
             "COMP_WORDS": "completed_proj.py hel", "COMP_CWORD": "1"},
    ).stdout
    assert answer.strip() == "plain,hello"
