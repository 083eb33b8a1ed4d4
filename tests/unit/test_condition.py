"""metadata_condition: every form of the manual works; code never runs."""

import pytest

from fiwareglancesync.condition import Condition, ConditionError
from fiwareglancesync.image import Image

IMAGE = Image(
    name="base_ubuntu",
    id="id1",
    visibility="public",
    size=2048,
    user_properties={"type": "baseimages", "nid": "12"},
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("image.user_properties.get('type', None) == 'baseimages'", True),
        ("metadata_set.intersection(image.user_properties)", True),
        ("'nid' in image.user_properties", True),
        ("not image.is_public", False),
        ("False", False),
        (
            "image.is_public and ('nid' in image.user_properties or 'type' in image.user_properties)",
            True,
        ),
        (
            "image.is_public and (not metadata_set or metadata_set.intersection(image.user_properties))",
            True,
        ),
        ("image.name.startswith('base_') and image.size < 4096", True),
        ("image.user_properties['nid'] in ('12', '13')", True),
        (
            "image.user_properties.get('nid', '').isdigit() and int(image.user_properties['nid']) > 10",
            True,
        ),
        ("image.id == 'id1' if image.is_public else False", True),
        ("image.name.lower() != image.name.upper()", True),
    ],
)
def test_forms_of_the_manual_are_accepted(text, expected):
    assert Condition(text).evaluate(IMAGE, {"nid", "sdc_aware"}) is expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch /tmp/glancesync-pwned')",
        "image.__class__.__mro__",
        "image.user_properties.__class__",
        "(lambda: True)()",
        "[x for x in image.user_properties]",
        "{k: 1 for k in 'ab'}",
        "open('/etc/passwd')",
        "exec('import os')",
        "eval('1')",
        "getattr(image, 'name')",
        "image.user_properties.clear()",
        "image.user_properties.pop('nid')",
        "image.name.format(image)",
        "os.system('true')",
        "image.name := 'x'",
        "print('hi')",
        "image.size ** 100",
        "image.user_properties.get('a', key='b')",
        "",
        "image.is_public and",
    ],
)
def test_anything_else_is_refused_at_load(text):
    with pytest.raises(ConditionError):
        Condition(text)


def test_a_failing_condition_is_false_with_a_warning(caplog):
    condition = Condition("image.user_properties['missing'] == 1")
    assert condition.evaluate(IMAGE, set()) is False
    assert "metadata_condition failed for image base_ubuntu" in caplog.text


def test_the_condition_cannot_change_the_image():
    image = Image(name="a", id="1", user_properties={"x": "1"})
    Condition("image.user_properties.get('x') == '1'").evaluate(image, set())
    assert image.user_properties == {"x": "1"}
