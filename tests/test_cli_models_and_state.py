"""``detstream models``/``model`` (what a project registers) and ``reset``/``clean-versions``
(a worker's files on this machine), as Faust's commands of those names."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from detstream.cli.main import main

PROJECT = '''
import detstream

app = detstream.App("cliproj", broker="kafka://localhost:9092", datadir={datadir!r}, version=2)


class Order(detstream.Record):
    """An order from the shop."""

    id: int
    amount: float = 0.0
'''


def project(tmp_path: Path) -> tuple[str, Path]:
    """The project as a module of its own name: the CLI imports a target once per process."""
    datadir = tmp_path / "data"
    source = tmp_path / f"cliproj_{tmp_path.name.replace('-', '_')}.py"
    source.write_text(PROJECT.format(datadir=str(datadir)))
    return str(source), datadir


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_models_lists_the_projects_records_and_model_shows_fields(tmp_path):
    source, _ = project(tmp_path)
    listed = invoke("models", source)
    assert listed.exit_code == 0
    # (the name column is as wide as the longest name registered in this process)
    assert re.search(rf"{Path(source).stem}\.Order +An order from the shop\.", listed.output)
    assert "ReqRepResponse" not in listed.output  # detstream's own only with --builtins
    assert "ReqRepResponse" in invoke("models", "--builtins", source).output
    shown = invoke("model", f"{Path(source).stem}.Order", source)  # other tests register Orders too
    rows = [line.split() for line in shown.output.splitlines()[3:]]
    assert rows == [["id", "int", "*"], ["amount", "float", "0.0"]]


def test_model_of_an_unknown_name_says_which_exist(tmp_path):
    source, _ = project(tmp_path)
    result = invoke("model", "Nope", source)
    assert result.exit_code == 2
    assert "'Nope' is not a registered model; models: " in result.output
    assert f"{Path(source).stem}.Order" in result.output


def test_reset_deletes_this_versions_state_and_clean_versions_the_others(tmp_path):
    source, datadir = project(tmp_path)
    for version in ("v1", "v2", "v3"):
        (datadir / version / "tables").mkdir(parents=True)
    (datadir / "other").mkdir()  # not a version directory: kept

    cleaned = invoke("clean-versions", source)
    assert cleaned.exit_code == 0
    assert sorted(p.name for p in datadir.iterdir()) == ["other", "v2"]
    assert f"deleted {datadir / 'v1'}" in cleaned.output

    reset = invoke("reset", source)
    assert reset.exit_code == 0 and "recovered from their changelogs" in reset.output
    assert sorted(p.name for p in datadir.iterdir()) == ["other"]
    assert "nothing to reset" in invoke("reset", source).output


def test_the_groups_datadir_option_names_the_directory(tmp_path):
    source, _ = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "v2").mkdir(parents=True)
    assert invoke("-D", str(elsewhere), "reset", source).exit_code == 0
    assert not (elsewhere / "v2").exists()


def test_reset_deletes_a_tabledir_of_its_own_too(tmp_path):
    datadir, tables = tmp_path / "data", tmp_path / "fast-disk" / "tables"
    source = tmp_path / f"tabledir_{tmp_path.name.replace('-', '_')}.py"
    source.write_text(PROJECT.format(datadir=str(datadir)).replace(
        "version=2)", f"version=2, tabledir={str(tables)!r})"))
    (datadir / "v2").mkdir(parents=True)
    tables.mkdir(parents=True)
    reset = invoke("reset", str(source))
    assert reset.exit_code == 0, reset.output
    assert not (datadir / "v2").exists() and not tables.exists()
    assert f"deleted {tables}" in reset.output
