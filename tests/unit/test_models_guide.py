"""What Faust's models guide shows of Records that detstream had otherwise: abstract models,
inheritance and positional arguments, defaults set by subclasses (polymorphic fields),
custom field classes, a field's own date parser, ``_options``' indices, ``__main__`` names."""

import subprocess
import sys
import textwrap
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, List, Optional  # noqa: UP035 - written as the guide writes them

import pytest

import detstream
from detstream.errors import InvalidArgument, ValidationError
from detstream.faust_compat import faust_alias
from detstream.fields import DatetimeField, StringField
from detstream.models import FieldDescriptor


class MyBaseRecord(detstream.Record, abstract=True):
    time_created: float | None = None
    time_modified: float | None = None


class Account(MyBaseRecord):
    id: str


def test_an_abstract_model_cannot_be_instantiated():
    with pytest.raises(NotImplementedError, match="abstract model MyBaseRecord"):
        MyBaseRecord()
    with pytest.raises(NotImplementedError):
        MyBaseRecord(time_created=1.0)


def test_a_subclass_adds_required_fields_after_its_bases_defaults():
    account = Account(id="X", time_created=3124312.3442)
    assert account.time_created == 3124312.3442
    # positional arguments fill the required fields first, as in Faust
    assert Account("Y") == Account(id="Y")
    assert Account("Y", 1.0, 2.0) == Account(id="Y", time_created=1.0, time_modified=2.0)
    assert list(Account._options.fieldpos.values()) == ["time_created", "time_modified", "id"]
    assert Account.loads(Account("Z").dumps()) == Account("Z")


def test_in_one_class_body_a_required_field_may_not_follow_a_default():
    with pytest.raises(InvalidArgument, match="required field 'z' follows field 'y'"):

        class Point(detstream.Record):
            x: int
            y: int = 0
            z: int


def test_positional_arguments_follow_the_inheritance_tree():
    class Point(detstream.Record):
        x: int
        y: int

    class XYZPoint(Point):
        z: int

    point = XYZPoint(10, 20, 30)
    assert (point.x, point.y, point.z) == (10, 20, 30)


class Asset(detstream.Record):
    url: str
    type: str


class ImageAsset(Asset):
    type = "image"


class VideoAsset(Asset):
    runtime_seconds: float
    type = "video"


class Article(detstream.Record, polymorphic_fields=True):
    assets: List[Asset]  # noqa: UP006 - as the guide writes it


def test_a_subclass_setting_a_bases_field_gives_it_a_default():
    assert ImageAsset(url="u") == ImageAsset(url="u", type="image")
    assert VideoAsset(url="v", runtime_seconds=3.0).type == "video"
    assert ImageAsset._options.defaults == {"type": "image"}
    with pytest.raises(TypeError, match="type"):
        Asset(url="u")  # the base's field stays required
    article = Article(assets=[ImageAsset(url="u"), VideoAsset(url="v", runtime_seconds=3.0)])
    back = Article.loads(article.dumps())
    assert back == article
    assert [type(asset) for asset in back.assets] == [ImageAsset, VideoAsset]


class ChoiceField(FieldDescriptor[str]):
    """models.rst's custom field class."""

    def __init__(self, choices: List[str], **kwargs: Any) -> None:  # noqa: UP006
        self.choices = choices
        # Must pass any custom args to init,
        # so we pass the choices keyword argument also here.
        super().__init__(choices=choices, **kwargs)

    def validate(self, value: str) -> Iterable[ValidationError]:
        if value not in self.choices:
            choices = ", ".join(self.choices)
            yield self.validation_error(f"{self.field} must be one of {choices}")


def test_a_custom_field_class_validates():
    class Order(detstream.Record):
        side: str = ChoiceField(["SELL", "BUY"])

    assert Order.side.options == {"choices": ["SELL", "BUY"]}
    errors = Order(side="LEFT").validate()
    assert [str(error) for error in errors] == [
        "side must be one of SELL, BUY <ChoiceField: Order.side: str>"]
    assert Order(side="BUY").validate() == []

    class StrictOrder(detstream.Record, validation=True):
        side: str = ChoiceField(["SELL", "BUY"])

    with pytest.raises(ValidationError, match="side must be one of SELL, BUY"):
        StrictOrder(side="LEFT")


def parse_twitter_date(text: str) -> datetime:
    return datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")


def test_a_fields_date_parser_is_used_also_under_the_models_coercion():
    class Account(detstream.Record, coerce=True):
        date_joined: datetime
        date_last_login: datetime = DatetimeField(date_parser=parse_twitter_date)

    account = Account(date_joined="2019-01-12T00:44:36",
                      date_last_login="Sat Jan 12 00:44:36 +0000 2019")
    assert account.date_joined == datetime(2019, 1, 12, 0, 44, 36)
    assert account.date_last_login == datetime(2019, 1, 12, 0, 44, 36, tzinfo=timezone.utc)


def test_model_options_index_the_fields():
    class Point(detstream.Record, serializer="json"):
        x: int
        y: int = 0
        label: str | None = None

    opts = Point._options
    assert opts.fields == {"x": int, "y": int, "label": Optional[str]}  # noqa: UP045
    assert opts.fieldset == frozenset({"x", "y", "label"})
    assert opts.fieldpos == {0: "x", 1: "y", 2: "label"}
    assert opts.optionalset == frozenset({"y", "label"})
    assert opts.defaults == {"y": 0, "label": None}
    assert opts.descriptors["x"] is Point.x


def test_fields_names_import_from_faust_models():
    with faust_alias():
        from faust.models import FieldDescriptor as FaustFieldDescriptor
        from faust.models import StringField as FaustStringField
    assert (FaustFieldDescriptor, FaustStringField) == (FieldDescriptor, StringField)


def test_a_record_of_a_script_is_named_by_its_file_as_faust_names_it(tmp_path):
    package = tmp_path / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    script = package / "points.py"
    script.write_text(textwrap.dedent("""
        import detstream

        class Point(detstream.Record):
            x: int

        print(Point(1).dumps().decode())
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            check=True, env={"PYTHONPATH": str(detstream_root())})
    assert result.stdout.strip() == '{"x":1,"__faust":{"ns":"proj.points.Point"}}'


def detstream_root():
    import pathlib

    return pathlib.Path(detstream.__file__).resolve().parents[1]
