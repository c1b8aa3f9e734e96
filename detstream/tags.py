"""Field tags: values a Record keeps out of logs and strings (``faust.models.tags``).

A field annotated ``Secret[str]`` (or given ``tag=Secret`` on its field class) holds its
value wrapped in the tag, so that printing, formatting or logging the value cannot leak
it by accident::

    class Account(Record):
        name: str
        password: Secret[str]          # str() and f-strings show a mask
        phone: Sensitive[str]          # str() and f-strings raise SecurityError

    account.password.get_value()       # the value itself, asked for by name

``Secret`` shows ``***********``. ``Sensitive`` and ``Personal`` refuse to become text
(``SecurityError``); their ``get_value()`` gives a *protected* string that may be read
only in the function that asked for it, so handing it on to other code by accident
raises too; ``with allow_protected_vars():`` lifts that. Only ``str`` and ``bytes`` may
be ``Sensitive`` or ``Personal``.

What differs from Faust: a Record writes a tagged field's value itself to the wire
(Faust's JSON encoder refuses a tag, so such a Record could not be sent); two tags of
one kind compare equal when their values do (Faust compared identities, so a Record
read back never equalled the one sent); a tag's ``repr`` names its field without a
memory address (traces and logs stay the same from run to run).
"""

from __future__ import annotations

import contextlib
import sys
import typing
from collections import UserString
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any, Generic, TypeVar

from detstream.errors import InvalidArgument, SecurityError

__all__ = [
    "OpaqueTag", "Personal", "Secret", "Sensitive", "Tag", "TransparentTag",
    "allow_protected_vars", "tag_of", "untagged",
]

T = TypeVar("T")

#: set inside ``allow_protected_vars()``: protected values may be read anywhere.
_allowed: ContextVar[bool] = ContextVar("detstream_allow_protected_vars", default=False)


@contextlib.contextmanager
def allow_protected_vars() -> Iterator[None]:
    """Let protected values (``Sensitive``/``Personal`` ``get_value()``) be read anywhere."""
    token = _allowed.set(True)
    try:
        yield
    finally:
        _allowed.reset(token)


class Tag(Generic[T]):
    """A value with a label saying how it may be shown; subclasses decide how."""

    is_secret: bool = False
    is_sensitive: bool = False
    is_personal: bool = False

    def __init__(self, value: T, *, field: str | None = None) -> None:
        if isinstance(value, Tag):
            raise SecurityError(f"cannot tag {type(self).__name__}: the value is already tagged")
        self._value = value
        #: the Record field the value belongs to, if any (named in errors).
        self.field = field

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name

    def get_value(self) -> T:
        """The value itself: asked for by name, so no accident."""
        return self._value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.field or '<no field>'}>"

    def __str__(self) -> str:
        raise NotImplementedError

    def __format__(self, format_spec: str) -> str:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Tag)
        return bool(self._value == other._value)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._value))


class OpaqueTag(Tag[T]):
    """A tag whose value never becomes text: ``str()`` and formatting raise."""

    def __str__(self) -> str:
        raise SecurityError(f"{type(self).__name__} value of {self.field or 'a field'} "
                            "used as a string; call get_value() where you need it")

    def __format__(self, format_spec: str) -> str:
        return self.__str__()


class TransparentTag(Tag[T]):
    """A tag that becomes text as something other than its value (a mask)."""

    def _shown(self) -> Any:
        return self._value

    def __str__(self) -> str:
        return str(self._shown())

    def __format__(self, format_spec: str) -> str:
        return format(self._shown(), format_spec)


class Secret(TransparentTag[T]):
    """A value shown as a mask: ``str(secret) == Secret.mask``."""

    is_secret = True
    mask: str = "***********"

    def _shown(self) -> Any:
        return self.mask


class _TextOnly:
    """``Sensitive[X]``/``Personal[X]`` only for ``str`` and ``bytes`` (Faust's rule)."""

    def __class_getitem__(cls, params: Any) -> Any:
        if not (isinstance(params, type) and issubclass(params, (str, bytes))):
            raise TypeError(f"{cls.__name__} only tags str or bytes, not {params!r}")
        return super().__class_getitem__(params)  # type: ignore[misc]


class Sensitive(_TextOnly, OpaqueTag[T]):
    """A value that never becomes text; ``get_value()`` is readable only where it was asked for."""

    is_sensitive = True

    def get_value(self) -> T:
        return typing.cast(T, ProtectedValue(self._value, field=self.field,
                                             kind=type(self).__name__.lower()))


class Personal(_TextOnly, OpaqueTag[T]):
    """Personal data: as ``Sensitive``, except inside ``allow_protected_vars()`` it is plain."""

    is_personal = True

    def get_value(self) -> T:
        if _allowed.get():
            return self._value
        return typing.cast(T, ProtectedValue(self._value, field=self.field,
                                             kind=type(self).__name__.lower()))


class ProtectedValue(UserString):
    """A string readable only in the frame that called ``get_value()`` (or where allowed).

    String methods read ``data``; it checks who is reading: the code that called the
    string method must be the code that asked for the value, so passing it to another
    function (a logger, a formatter) raises ``SecurityError`` there.
    """

    def __init__(self, value: Any, *, field: str | None = None, kind: str = "protected") -> None:
        # not UserString.__init__: it would read the value as a str at once
        self._value = value
        self._field = field or "<unknown field>"
        self._kind = kind
        self._origin = _frame_key(sys._getframe(2))  # the caller of get_value()

    @property
    def data(self) -> Any:
        if _allowed.get():
            return self._value
        # data <- the str method reading it <- the code that called that method
        if _frame_key(sys._getframe(2)) == self._origin:
            return self._value
        raise SecurityError(f"{self._kind} value of field {self._field} read outside the "
                            "code that asked for it; use allow_protected_vars() to hand it on")

    @data.setter
    def data(self, value: Any) -> None:  # UserString's own methods never set it; results are new
        self._value = value

    def __repr__(self) -> str:
        return f"<protected {self._kind} value of {self._field}>"


def _frame_key(frame: FrameType) -> tuple[int, Any]:
    return id(frame), frame.f_code


def untagged(value: Any) -> Any:
    """The value inside a tag (what goes on the wire), or ``value`` itself."""
    return value._value if isinstance(value, Tag) else value


def tag_of(annotation: Any) -> tuple[Any, Any]:
    """Split ``Secret[str]`` (or ``Optional[Secret[str]]``) into (``str``, ``Secret[str]``).

    Returns ``(annotation, None)`` for an annotation without a tag.
    """
    origin = typing.get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, Tag):
        args = typing.get_args(annotation)
        return (args[0] if args else Any), annotation
    if origin is typing.Union or _is_union_type(annotation):
        members = typing.get_args(annotation)
        inner = [tag_of(m) for m in members]
        tagged = [tag for _, tag in inner if tag is not None]
        if len(tagged) == 1:
            unwrapped = tuple(tp for tp, _ in inner)
            return typing.Union[unwrapped], tagged[0]  # noqa: UP007 - built from a tuple
    if isinstance(annotation, type) and issubclass(annotation, Tag):
        return Any, annotation
    return annotation, None


def _is_union_type(annotation: Any) -> bool:
    import types

    return isinstance(annotation, types.UnionType)


def check_tag(tag: Any, *, where: str) -> None:
    """Refuse a ``tag=`` that is not a Tag class (``Secret``, ``Secret[str]``, your own)."""
    origin = typing.get_origin(tag) or tag
    if not (isinstance(origin, type) and issubclass(origin, Tag)):
        raise InvalidArgument(
            f"{where}: tag={tag!r} is not a field tag; give a class of detstream.tags "
            "(Secret, Sensitive, Personal) or a subclass of detstream.tags.Tag"
        )
