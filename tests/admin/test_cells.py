"""The Federation tab's rows, made in Python: escaped as Jinja would, a cell per column."""

from __future__ import annotations

import re

import pytest
from jinja2 import Environment

from homeport.admin.cells import destination_rows
from homeport.admin.rows import DestinationRow
from homeport.admin.views.federation import COLUMNS, LAST_INCIDENT

HOSTILE = '<script>alert("x")</script>&"\'/ é.example.org'


def row(destination: str, stream_ordering: int | None = 7) -> DestinationRow:
    return DestinationRow(
        destination=destination,
        status="Working",
        first_failed=None,
        last_failed=None,
        next_attempt=None,
        next_attempt_due=False,
        undelivered_since=None,
        waiting_rooms=0,
        rooms=3,
        stream_ordering=stream_ordering,
        can_reset=False,
    )


@pytest.mark.parametrize("kept", [False, True])
def test_a_row_has_a_cell_per_column_and_escapes_the_name_as_jinja_would(kept: bool) -> None:
    html = str(destination_rows([row(HOSTILE), row("b.example.org", None)], kept))
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert len(rows) == 2
    columns = (*COLUMNS, LAST_INCIDENT) if kept else COLUMNS
    for found in rows:
        assert len(re.findall(r"<td[ >]", found)) == len(columns)
    assert "<script>" not in html
    jinja = Environment(autoescape=True).from_string(
        '<a href="/federation/{{ d|urlencode }}">{{ d }}</a>'
    )
    assert jinja.render(d=HOSTILE) in rows[0]
    assert '<td class="num">3</td><td class="num">7</td>' in rows[0]
    assert '<td class="num">–</td>' in rows[1]


def test_no_rows_is_empty_markup() -> None:
    assert str(destination_rows([], True)) == ""
