"""The one-line, name-once wording that every error row and command-line error goes through."""

from idc_core.errors import ImageError, named, one_line


def test_one_line_collapses_every_run_of_whitespace() -> None:
    assert one_line("cannot read\n  level 2\t(truncated)\n") == "cannot read level 2 (truncated)"


def test_an_error_without_text_is_named_by_its_type() -> None:
    assert one_line(KeyError()) == "KeyError"
    assert one_line(ImageError("a.png:\nnot an image")) == "a.png: not an image"
    assert one_line("") == ""


def test_the_input_is_named_once() -> None:
    assert named("a.png", "not an image") == "a.png: not an image"
    assert named("a.png", "a.png: not an image") == "a.png: not an image"
