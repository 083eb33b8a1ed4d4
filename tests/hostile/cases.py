"""The hostile-input corpus: what a careless or malicious configuration, backup or command
line can throw at sync.py and the mock loader.

Each case is run in a child process with a memory limit and a timeout (see
``test_hostile.py``). Whatever the input, the child must end in time with one of the
documented exit statuses, print no traceback, run none of the code hidden in the input
(which would create ``PWNED``), and change no file outside the mock store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PWNED = "PWNED"  # a file the injected code would create in the sandbox
OK, FAILED, USAGE = 0, 1, 2

HEADER = "region,name,id,status,size,checksum,owner,is_public,user_properties\n"
MASTER_ROW = "Valladolid,ubuntu,m1,active,10,{checksum},tenant1id,True,{properties}\n"
GOOD_CONFIG = """\
[main]
master_region = Valladolid
[master]
credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1
metadata_set = type
"""


@dataclass(frozen=True)
class Case:
    """One hostile input. ``command`` is ``sync`` (sync.py on a store holding ``files``)
    or ``load`` (the loader on a scenario folder holding ``files``)."""

    name: str
    command: str
    argv: tuple[str, ...] = ()
    config: str | bytes = GOOD_CONFIG
    files: dict[str, str | bytes] = field(default_factory=dict)
    statuses: frozenset[int] = frozenset({USAGE})
    message: str = ""  # a piece of the one error line expected, when there is one


def row(properties: str = "{'type': 'x'}", checksum: str = "1" * 32) -> str:
    return MASTER_ROW.format(checksum=checksum, properties=properties)


def region_files(master: str | bytes | None = None) -> dict[str, str | bytes]:
    return {"backup_Valladolid.csv": row() if master is None else master, "backup_Leon.csv": ""}


def condition(expression: str, message: str, statuses: frozenset[int] = frozenset({USAGE})) -> Case:
    text = GOOD_CONFIG + f"metadata_condition = {expression}\n"
    return Case(
        f"condition {expression[:40]!r}",
        "sync",
        ("--show-status", "Leon"),
        text,
        region_files(),
        statuses,
        message,
    )


def _balanced_product(leaves: int, leaf: str) -> str:
    """``((a * a) * (a * a)) * ...``: big numbers from few levels of nesting."""
    terms = [leaf] * leaves
    while len(terms) > 1:
        terms = [f"({terms[i]} * {terms[i + 1]})" for i in range(0, len(terms), 2)]
    return terms[0]


BALANCED_PRODUCT = _balanced_product(64, "9" * 32)


def config(name: str, text: str | bytes, message: str, argv: tuple[str, ...] = ("Leon",)) -> Case:
    return Case(name, "sync", argv, text, region_files(), frozenset({USAGE}), message)


def load(
    name: str, files: dict[str, str | bytes], message: str, statuses=frozenset({USAGE})
) -> Case:
    return Case(name, "load", (), GOOD_CONFIG, files, statuses, message)


CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------ metadata_condition
    condition(f"__import__('os').system('touch {PWNED}')", "call of"),
    condition("image.__class__.__mro__", "is not allowed"),
    condition("(lambda: open('PWNED', 'w'))()", "call of"),
    condition("[open('PWNED', 'w') for x in 'a']", "ListComp is not allowed"),
    condition("'a' * 10000000000", "it would build a value of"),
    condition("'%0999999999d' % 1", "% is allowed between numbers only"),
    condition("image.name.replace('', 'x' * 99999) == ''", "it would build a value of"),
    condition("(" * 500 + "True" + ")" * 500, "too many nested parentheses"),
    condition("1" + " + 1" * 3000, "longer than 4000 characters"),
    condition("not " * 300 + "True", "nested more than 40 levels"),
    condition("-" * 3000 + "1", "nested too deeply"),
    condition(f"{BALANCED_PRODUCT} > 0", "it would build a number of"),
    condition("[1] * 99999 + [1] * 99999", "it would build a value of"),
    condition("image.user_properties.get('type') * 999999999", "it would build a value of"),
    condition("1/0", "", frozenset({OK})),  # a failing expression selects nothing
    Case(
        "condition on a huge image",
        "sync",
        ("--show-status", "Leon"),
        GOOD_CONFIG + "metadata_condition = image.name * image.size > ''\n",
        region_files(row().replace(",10,", ",10000000000,")),
        frozenset({USAGE}),
        "it would build a value of 60000000000 items",
    ),
    # ------------------------------------------------------------ configuration file
    config(
        "max_children absurd", "[main]\nmax_children = 1000000000\n" + GOOD_CONFIG[7:], "is too big"
    ),
    config(
        "max_children negative", "[main]\nmax_children = -5\n" + GOOD_CONFIG[7:], "is too small"
    ),
    config("timeout nan", GOOD_CONFIG + "list_images_timeout = nan\n", "is not a finite number"),
    config("timeout inf", GOOD_CONFIG + "list_images_timeout = 1e400\n", "is not a finite number"),
    config("transfer unknown", GOOD_CONFIG + "transfer = carrier-pigeon\n", "is not one of auto"),
    config("import timeout zero", GOOD_CONFIG + "import_timeout = 0\n", "is too small"),
    config("lock timeout years", "[main]\nlock_timeout = 1e12\n" + GOOD_CONFIG[7:], "is too big"),
    config(
        "duplicate section", GOOD_CONFIG + "[master]\nuser = x\n", "section [master] appears twice"
    ),
    config(
        "duplicate option",
        GOOD_CONFIG + "metadata_set = nid\n",
        "option metadata_set appears twice",
    ),
    config("binary configuration", b"\xff\xfe[main]\x00\x00", "is not UTF-8 text"),
    config("bad base64", GOOD_CONFIG.replace("c2VjcmV0", "%%%%"), "not valid base64"),
    config("no sections", "just text\n", "File contains no section headers"),
    Case(
        "huge configuration",
        "sync",
        ("--show-status", "Leon"),
        GOOD_CONFIG + "".join(f"opt{n} = {'v' * 50}\n" for n in range(50000)),
        region_files(),
        frozenset({OK}),
    ),
    config(
        "traversal region",
        GOOD_CONFIG,
        "a region name cannot contain '/'",
        ("--make-backup", "../../escape"),
    ),
    config("two colons", GOOD_CONFIG, "bad region name 'a:b:c'", ("a:b:c",)),
    config("unknown target", GOOD_CONFIG, "unknown target 'nowhere'", ("nowhere:Region",)),
    Case(
        "many overrides",
        "sync",
        ("--show-status", "Leon", "--config", *(f"master.opt{n}=x" for n in range(5000))),
        GOOD_CONFIG,
        region_files(),
        frozenset({OK}),
    ),
    # ------------------------------------------------------------ backups to load
    load(
        "code in a cell",
        {"backup_A.csv": row(f"\"__import__('os').system('touch {PWNED}')\"")},
        "not a dict literal",
    ),
    load(
        "deeply nested cell",
        {"backup_A.csv": row("\"{'a': " + "[" * 100000 + "]" * 100000 + '}"')},
        "not a dict literal",
    ),
    load("complex number", {"backup_A.csv": row("\"{'a': 1j}\"")}, "is a complex number"),
    load("infinite number", {"backup_A.csv": row("\"{'a': 1e999}\"")}, "is not a finite number"),
    load("a set", {"backup_A.csv": row("\"{'a': {1, 2}}\"")}, "is a set"),
    load(
        "huge size", {"backup_A.csv": "A,x,1,active,1.5e400,c,o,True,{}\n"}, "size is not a number"
    ),
    load("negative size", {"backup_A.csv": "A,x,1,active,-4,c,o,True,{}\n"}, "size is negative"),
    load(
        "too few fields",
        {"backup_A.csv": "A,x,1\n"},
        "expected 9 fields (format 1) or 18 (format 2), found 3",
    ),
    load("not UTF-8", {"backup_A.csv": b"A,\xff\xfe,1,active,1,c,o,True,{}\n"}, "cannot be read"),
    load(
        "big cell",
        {"backup_A.csv": row("\"{'a': '" + "x" * 3_000_000 + "'}\"")},
        "",
        frozenset({OK}),
    ),
    load("NUL bytes", {"backup_A.csv": "A,x\x00y,1,active,1,c,o,True,{}\n"}, "", frozenset({OK})),
    load("header only", {"backup_A.csv": HEADER}, "", frozenset({OK})),
    load("three-part region", {"backup_a:b:c.csv": ""}, "neither Region nor target:Region"),
    load("no backup files", {"notes.txt": "hello"}, "has no backup_<region>.csv file"),
    load(
        "project ids not an object",
        {"backup_A.csv": "", "project_ids.json": "[1, 2, 3]"},
        "not a JSON object",
    ),
    load(
        "project ids nested",
        {"backup_A.csv": "", "project_ids.json": "[" * 100000 + "]" * 100000},
        "not a JSON object",
    ),
    load(
        "project ids huge",
        {"backup_A.csv": "", "project_ids.json": '{"m": "' + "x" * 2_000_000 + '"}'},
        "too big",
    ),
    # ------------------------------------------------------------ a store that went bad
    Case(
        "malformed store row",
        "sync",
        ("--show-status", "Leon"),
        GOOD_CONFIG,
        {"backup_Valladolid.csv": row(), "backup_Leon.csv": "Leon,x,1,active,lots,c,o,True,{}\n"},
        frozenset({FAILED}),
        "size is not a number",
    ),
    Case(
        "nested store cell",
        "sync",
        ("Leon",),
        GOOD_CONFIG,
        {
            "backup_Valladolid.csv": row("\"{'a': " + "[" * 50000 + "]" * 50000 + '}"'),
            "backup_Leon.csv": "",
        },
        frozenset({FAILED}),
        "not a dict literal",
    ),
)
