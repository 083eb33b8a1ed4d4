"""The backup CSV format: reading, writing, and refusing anything that is not data."""

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fiwareglancesync.image import (
    CsvFormatError,
    Image,
    image_from_row,
    needs_format_2,
    parse_properties,
    read_csv,
    same_owner,
    write_csv,
)

ROW = "Burgos,base,id1,active,1024,abc,tenant1id,True,\"{'type': 'ngimages', 'nid': 1}\"\n"


def test_reads_a_backup_row():
    [image] = read_csv(io.StringIO(ROW))
    assert image == Image(
        name="base",
        id="id1",
        region="Burgos",
        status="active",
        size=1024,
        checksum="abc",
        owner="tenant1id",
        visibility="public",
        user_properties={"type": "ngimages", "nid": 1},
    )


def test_round_trip_through_csv():
    images = [
        Image("a,b", "1$a", "R", "active", 5, "c", "o", "private", {"k": "v, 'q'", "n": None}),
        Image("plain", "x", "R", "queued", 0, None, "", "public", {}),
    ]
    out = io.StringIO()
    write_csv(out, images)
    assert list(read_csv(io.StringIO(out.getvalue()))) == images


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{}", {}),
        ("", {}),
        (
            "{'a': 'b', 'n': 1, 'f': 1.5, 't': True, 'x': None}",
            {"a": "b", "n": 1, "f": 1.5, "t": True, "x": None},
        ),
        ("{'a': \"it's\"}", {"a": "it's"}),
        ("{'a': 'tab\there'}", {"a": "tab\there"}),
        ("{'a': 'True'}", {"a": "True"}),
        ("{'a': [1, 2], 'b': {'c': 'd'}}", {"a": [1, 2], "b": {"c": "d"}}),
        ("{'a': 'x\\'y'}", {"a": "x'y"}),
        ("{1: 'int key'}", {1: "int key"}),
        ("{'a': 01}" if False else "{'a': -3}", {"a": -3}),
    ],
)
def test_properties_cell_is_a_python_literal(text, expected):
    assert parse_properties(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch /tmp/glancesync-pwned')",
        "{'a': __import__('os').getcwd()}",
        "[1, 2]",
        "{'a': open('/etc/passwd').read()}",
        "{'a': 1",
        "lambda: 1",
    ],
)
def test_properties_cell_with_code_is_refused_and_never_run(text, tmp_path):
    with pytest.raises(CsvFormatError):
        parse_properties(text)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(max_size=12),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    )
)
def test_fast_path_reads_exactly_what_repr_wrote(properties):
    assert parse_properties(repr(properties)) == properties


@pytest.mark.parametrize(
    "row, problem",
    [
        ("R,a,id,active,12,c,o,True", "expected 9 fields (format 1) or 18 (format 2), found 8"),
        (
            "R,a,id,active,12,c,o,True,{},extra",
            "expected 9 fields (format 1) or 18 (format 2), found 10",
        ),
        ("R,a,id,active,big,c,o,True,{}", "size is not a number"),
        ("R,a,id,active,12,c,o,maybe,{}", "is_public is not True or False"),
        ("R,a,id,active,12,c,o,True,\"['list']\"", "user_properties is not a dict literal"),
    ],
)
def test_malformed_rows_name_the_source_line_and_problem(row, problem):
    text = ROW + row + "\n"
    with pytest.raises(CsvFormatError) as raised:
        list(read_csv(io.StringIO(text), "backup_R.csv"))
    assert str(raised.value).startswith("backup_R.csv, line 2: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    "cell, public",
    [
        *[(cell, True) for cell in ("True", "true", "yes", "1", "on")],
        *[(cell, False) for cell in ("False", "no", "0", "OFF", "")],
    ],
)
def test_is_public_cells_are_the_boolean_words_or_empty(cell, public):
    image = image_from_row(["R", "a", "id", "active", "1", "c", "o", cell, "{}"])
    assert image.is_public is public


def test_size_and_checksum_placeholders_of_old_backups():
    image = image_from_row(["R", "a", "id", "queued", "None", "None", "None", "False", "{}"])
    assert (image.size, image.checksum, image.owner) == (0, None, "")


def test_same_owner_strips_leading_zeros_only():
    assert same_owner("00012", "12")
    assert same_owner("", None)
    assert not same_owner("120", "12")


# --------------------------------------------------------------------------- format 2

V2_HEADER = (
    "region,name,id,status,size,checksum,owner,is_public,user_properties,visibility,tags,"
    "os_hidden,protected,min_disk,min_ram,disk_format,container_format,members"
)


def _v2_image(**changes):
    image = Image("amphora", "id2", "R", "active", 9, "c", "o", "private", {"k": "v"})
    image.visibility, image.visibility_known = "shared", True
    image.tags = ("amphora", "octavia")
    image.hidden = True
    image.protected = True
    image.min_disk = 2
    image.min_ram = 512
    image.disk_format = "qcow2"
    image.container_format = "bare"
    image.members = ("p1", "p2")
    for name, value in changes.items():
        setattr(image, name, value)
    return image


def test_format_2_round_trip_keeps_every_glance_field():
    out = io.StringIO()
    write_csv(out, [_v2_image()])
    text = out.getvalue()
    assert text.splitlines()[0] == V2_HEADER
    [image] = read_csv(io.StringIO(text))
    assert image == _v2_image()
    assert image.is_public is False and image.visibility == "shared"


def test_a_nine_column_backup_still_loads_and_is_written_back_byte_for_byte():
    [image] = read_csv(io.StringIO(ROW))
    assert image.known_visibility is None and image.tags == () and not image.protected
    out = io.StringIO()
    write_csv(out, [image])
    assert out.getvalue() == ROW


def test_format_1_can_be_asked_for_and_drops_the_v2_fields():
    out = io.StringIO()
    write_csv(out, [_v2_image()], version=1)
    [row] = out.getvalue().splitlines()
    assert row == "R,amphora,id2,active,9,c,o,False,{'k': 'v'}"
    [image] = read_csv(io.StringIO(out.getvalue()))
    assert image.tags == () and image.is_public is False and image.known_visibility is None


def test_the_automatic_format_is_2_only_when_a_field_needs_it():
    plain = Image("p", "x", "R", "active", 1, "c", "o", "public", {})
    out = io.StringIO()
    write_csv(out, [plain, _v2_image(tags=())])
    assert out.getvalue().startswith(V2_HEADER + "\n")
    out = io.StringIO()
    write_csv(out, [plain])
    assert not out.getvalue().startswith("region,")


def test_visibility_cell_decides_is_public():
    row = ROW.rstrip("\n") + ",private,,,,,,,,\n"
    [image] = read_csv(io.StringIO(row))
    assert image.is_public is False and image.visibility == "private"


@pytest.mark.parametrize(
    ("cells", "problem"),
    [
        ("secret,,,,,,,,", "visibility is not one of public, private, shared, community"),
        (',"[1]",,,,,,,', "tags is not a list of strings"),
        (",[,,,,,,,", "tags is not a JSON list"),
        (",,maybe,,,,,,", "os_hidden is not True or False"),
        (",,,,-1,,,,", "min_disk is not a whole number"),
        (",,,,,1e3,,,", "min_ram is not a whole number"),
    ],
)
def test_bad_format_2_cells_are_refused_by_name(cells, problem):
    with pytest.raises(CsvFormatError, match=problem):
        read_csv(io.StringIO(ROW.rstrip("\n") + "," + cells + "\n"))


def test_a_mixed_file_of_nine_and_eighteen_columns_loads():
    mixed = ROW + ROW.replace("id1", "id2").rstrip("\n") + ",community,,,,,,,,\n"
    first, second = read_csv(io.StringIO(mixed))
    assert first.known_visibility is None and second.visibility == "community"


def test_is_public_is_read_from_the_one_visibility_field():
    shared = Image("a", "id", visibility="shared", visibility_known=True)
    assert shared.is_public is False and shared.known_visibility == "shared"
    with pytest.raises(AttributeError):
        shared.is_public = True  # read-only: the visibility is the one fact
    # Made public or not, as Glance v1 and format-1 updates say it: shared stays shared.
    assert shared.copy(is_public=True).visibility == "public"
    assert shared.copy(is_public=False).visibility == "shared"
    assert Image("b", "id", visibility="public").copy(is_public=False).visibility == "private"
    # A format-1 row tells only public-or-not: no visibility cell, and none known.
    [row_image] = read_csv(io.StringIO(ROW))
    assert (row_image.visibility, row_image.known_visibility) == ("public", None)
    told = row_image.copy(visibility="community")
    assert told.known_visibility == "community" and needs_format_2(told)
    assert not needs_format_2(row_image.copy(is_public=False))
