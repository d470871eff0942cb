"""The renderers behind every uploaded file: quoting and the SQL's shape."""

from __future__ import annotations

import json

import yaml

from components.services.render import (
    DatabaseRole,
    quote_identifier,
    quote_literal,
    quote_word,
    render_directives,
    render_json,
    render_roles_sql,
    render_yaml,
)


def test_plain_words_stay_bare_and_others_are_quoted() -> None:
    assert quote_word("allkeys-lru") == "allkeys-lru"
    assert quote_word("172.30.0.0/24") == "172.30.0.0/24"
    assert quote_word("") == '""'
    assert quote_word('a "b" c') == '"a \\"b\\" c"'
    assert quote_word("back\\slash") == '"back\\\\slash"'


def test_directives_render_one_per_line() -> None:
    text = render_directives([("save", [""]), ("sentinel", ["monitor", "m", "h", "1"])])
    assert text == 'save ""\nsentinel monitor m h 1\n'


def test_sql_quoting_doubles_quotes() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"
    sql = render_roles_sql([DatabaseRole("app", "app", "pa'ss")])
    assert "PASSWORD 'pa''ss';" in sql
    assert sql.count("\\gexec") == 1


def test_yaml_and_json_round_trip() -> None:
    document = {"b": [1, "two"], "a": {"nested": True}}
    assert yaml.safe_load(render_yaml(document)) == document
    assert json.loads(render_json(document)) == document
    assert list(yaml.safe_load(render_yaml(document))) == ["b", "a"]  # order kept for reading
