"""The analytics page (B6): charts of one user's sent mail, each with its table and CSV.

One `Table` per chart holds the numbers; the chart, the accessible table under it
and its CSV download are all drawn from that one table, so they cannot disagree.
The charts are SVG built on the server (`core.charts`): no script, no CDN, and the
Content-Security-Policy stays as strict as everywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_skeleton, format_timedelta
from babel.numbers import format_decimal
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from mailbeacon.core.charts import (
    NARROW,
    WIDTH,
    ChartText,
    Series,
    bar_chart,
    hbar_chart,
    line_chart,
    to_csv,
)
from mailbeacon.store.analytics import MAX_DAYS, Grouping, Period, Report, last_days, report
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.mail.shared import Current, database
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

PRESETS = ("7", "30", "90")
DEFAULT_PRESET = "30"
CHARTS = ("volume", "rates", "first-open", "links", "contacts")


@dataclass(frozen=True, slots=True)
class Choice:
    """What the period picker asked for, as given (echoed back into the form)."""

    period: str = DEFAULT_PRESET
    start: str = ""
    end: str = ""
    by: str = "day"

    def query(self) -> str:
        values = {"period": self.period, "by": self.by}
        if self.period == "custom":
            values |= {"from": self.start, "to": self.end}
        return urlencode(values)


def choose_period(choice: Choice, today: date, l10n: Localizer) -> tuple[Period, str]:
    """The period the picker asks for, or the default and a message saying what was wrong."""
    by: Grouping = "week" if choice.by == "week" else "day"
    if choice.period in PRESETS:
        return last_days(int(choice.period), today, l10n.tz, by), ""
    default = last_days(int(DEFAULT_PRESET), today, l10n.tz, by)
    if choice.period != "custom":
        return default, ""
    try:
        first, last = date.fromisoformat(choice.start), date.fromisoformat(choice.end)
    except ValueError:
        return default, l10n.gettext("Give both days of a custom period, as dates.")
    if first > last:
        return default, l10n.gettext("The first day of the period is after its last day.")
    if (last - first).days + 1 > MAX_DAYS:
        return default, l10n.gettext("A period can be at most %(days)d days long.", days=MAX_DAYS)
    return Period(first, last, l10n.tz, by), ""


@dataclass(frozen=True, slots=True)
class Table:
    """A chart's numbers: a header and rows of raw values (dates, ints, rates, text)."""

    name: str
    header: list[str]
    rows: list[list[Any]]

    def csv(self) -> str:
        return to_csv(self.header, ([_csv_value(v) for v in row] for row in self.rows))


@dataclass(frozen=True, slots=True)
class Rate:
    """A percentage of delivered copies; None when nothing was delivered."""

    value: float | None


def _csv_value(value: Any) -> Any:
    if isinstance(value, Rate):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


# Babel takes ~80 µs per number or date; a 90-day page formats about a thousand,
# mostly the same small counts and percentages: remembered per language.
@lru_cache(maxsize=4096)
def _decimal(value: float | int, language: str, pattern: str | None) -> str:
    return format_decimal(value, format=pattern, locale=language)


@lru_cache(maxsize=4096)
def _day(day: date, language: str, skeleton: str) -> str:
    return format_skeleton(skeleton, day, locale=language)


def cell_text(value: Any, l10n: Localizer, by: str) -> str:
    """A table cell as a person reads it, in their language."""
    if isinstance(value, Rate):
        if value.value is None:
            return "—"
        return _decimal(value.value, l10n.language, "#,##0.0") + " %"
    if isinstance(value, date):
        return day_label(value, l10n, by, long=True)
    if isinstance(value, int):
        return _decimal(value, l10n.language, None)
    return str(value)


def day_label(day: date, l10n: Localizer, by: str, *, long: bool = False) -> str:
    text = _day(day, l10n.language, "yMMMd" if long else "MMMd")
    if by == "week" and long:
        return l10n.gettext("Week of %(day)s", day=text)
    return text


def first_open_labels(l10n: Localizer) -> list[str]:
    return [
        l10n.gettext("Under 10 minutes"),
        l10n.gettext("10 to 60 minutes"),
        l10n.gettext("1 to 4 hours"),
        l10n.gettext("4 to 24 hours"),
        l10n.gettext("1 to 3 days"),
        l10n.gettext("3 to 7 days"),
        l10n.gettext("Over 7 days"),
    ]


def first_open_short_labels(l10n: Localizer) -> list[str]:
    """The same bars, short enough to sit under a chart at phone width."""
    return [
        l10n.gettext("< 10 min"),
        l10n.gettext("10–60 min"),
        l10n.gettext("1–4 h"),
        l10n.gettext("4–24 h"),
        l10n.gettext("1–3 days"),
        l10n.gettext("3–7 days"),
        l10n.gettext("> 7 days"),
    ]


def tables(data: Report, l10n: Localizer) -> dict[str, Table]:
    """Every chart's numbers, for the page and for the CSV downloads."""
    _ = l10n.gettext
    when = _("Week starting") if data.period.by == "week" else _("Day")
    buckets = data.buckets
    return {
        "volume": Table(
            "volume",
            [when, _("Sent"), _("Delivered")],
            [[b.start, b.tally.sent, b.tally.delivered] for b in buckets],
        ),
        "rates": Table(
            "rates",
            [
                when,
                _("Delivered"),
                _("Opened"),
                _("Open rate (%)"),
                _("Clicked"),
                _("Click rate (%)"),
                _("Replied"),
                _("Reply rate (%)"),
            ],
            [
                [
                    b.start,
                    b.tally.delivered,
                    b.tally.opened,
                    Rate(b.tally.open_rate),
                    b.tally.clicked,
                    Rate(b.tally.click_rate),
                    b.tally.replied,
                    Rate(b.tally.reply_rate),
                ]
                for b in buckets
            ],
        ),
        "first-open": Table(
            "first-open",
            [_("Time to first open"), _("Copies")],
            [
                [label, n]
                for label, (_, n) in zip(
                    first_open_labels(l10n), data.first_opens.histogram, strict=True
                )
            ],
        ),
        "links": Table(
            "links",
            [_("Link"), _("Clicks"), _("Recipients who clicked")],
            [[row.url, row.clicks, row.people] for row in data.links],
        ),
        "contacts": Table(
            "contacts",
            [
                _("Address"),
                _("Name"),
                _("Delivered"),
                _("Opened"),
                _("Clicked"),
                _("Replied"),
                _("Opens"),
                _("Clicks"),
            ],
            [
                [c.address, c.name, c.copies, c.opened, c.clicked, c.replied, c.opens, c.clicks]
                for c in data.contacts
            ],
        ),
    }


@dataclass(frozen=True, slots=True)
class Block:
    """One chart on the page: heading, SVG, the table under it, its CSV link."""

    name: str
    heading: str
    note: str
    svg: Markup | None
    svg_narrow: Markup | None  # the same chart drawn for phones (the page shows one)
    table: Table
    cells: list[list[str]]
    csv_url: str


def charts(data: Report, l10n: Localizer, width: int = WIDTH) -> dict[str, Markup | None]:
    """The SVG of each chart at one width; None where there is nothing to draw."""
    suffix = "" if width == WIDTH else "-narrow"
    _ = l10n.gettext
    by = data.period.by
    labels = [day_label(b.start, l10n, by) for b in data.buckets]
    axis = _("Week starting") if by == "week" else _("Day")
    span = _(
        "From %(first)s to %(last)s.",
        first=day_label(data.period.first_day, l10n, "day", long=True),
        last=day_label(data.period.last_day, l10n, "day", long=True),
    )
    after = _("The table below the chart holds the same numbers.")
    drawn: dict[str, Markup | None] = {name: None for name in CHARTS}
    if not data.totals.sent:
        return drawn
    drawn["volume"] = Markup(  # noqa: S704 - core.charts escapes every text it draws
        bar_chart(
            labels,
            [
                Series(_("Sent"), tuple(float(b.tally.sent) for b in data.buckets)),
                Series(_("Delivered"), tuple(float(b.tally.delivered) for b in data.buckets)),
            ],
            ChartText(
                f"chart-volume{suffix}",
                _("Copies sent"),
                " ".join((_("Copies sent and delivered, per day or week."), span, after)),
                axis,
                _("Copies"),
                width=width,
            ),
        )
    )
    drawn["rates"] = Markup(  # noqa: S704
        line_chart(
            labels,
            [
                Series(_("Open rate"), tuple(b.tally.open_rate for b in data.buckets)),
                Series(_("Click rate"), tuple(b.tally.click_rate for b in data.buckets)),
                Series(_("Reply rate"), tuple(b.tally.reply_rate for b in data.buckets)),
            ],
            ChartText(
                f"chart-rates{suffix}",
                _("Open, click and reply rates"),
                " ".join(
                    (_("Share of delivered copies opened, clicked and replied to."), span, after)
                ),
                axis,
                _("Percent of delivered copies"),
                width=width,
            ),
            unit="%",
            maximum=100.0,
        )
    )
    if data.first_opens.total:
        drawn["first-open"] = Markup(  # noqa: S704
            bar_chart(
                first_open_short_labels(l10n),
                [Series(_("Copies"), tuple(float(n) for _, n in data.first_opens.histogram))],
                ChartText(
                    f"chart-first-open{suffix}",
                    _("Time to first open"),
                    " ".join((_("How long opened copies waited for their first open."), after)),
                    _("Time to first open"),
                    _("Copies"),
                    width=width,
                ),
            )
        )
    if data.links:
        drawn["links"] = Markup(  # noqa: S704
            hbar_chart(
                [row.url for row in data.links],
                [float(row.clicks) for row in data.links],
                ChartText(
                    f"chart-links{suffix}",
                    _("Top links"),
                    " ".join((_("The most clicked links, by counted clicks."), after)),
                    _("Clicks"),
                    _("Link"),
                    width=width,
                ),
            )
        )
    return drawn


def blocks(data: Report, l10n: Localizer, choice: Choice, root: str) -> list[Block]:
    _ = l10n.gettext
    found = tables(data, l10n)
    drawn = charts(data, l10n)
    narrow = charts(data, l10n, NARROW)
    headings: dict[str, tuple[str, str]] = {
        "volume": (_("Copies sent"), ""),
        "rates": (
            _("Open, click and reply rates"),
            _("Each day's copies, and what became of them since."),
        ),
        "first-open": (_("Time to first open"), ""),
        "links": (_("Top links"), _("Counted clicks on the copies sent in this period.")),
        "contacts": (
            _("Most engaged contacts"),
            _("Ordered by replies, then clicks, then opens."),
        ),
    }
    by = data.period.by
    return [
        Block(
            name,
            headings[name][0],
            headings[name][1],
            drawn[name],
            narrow[name],
            found[name],
            [[cell_text(v, l10n, by) for v in row] for row in found[name].rows],
            f"{root}/analytics/{name}.csv?{choice.query()}",
        )
        for name in CHARTS
    ]


def median_text(minutes: float | None, l10n: Localizer) -> str:
    if minutes is None:
        return "—"
    return format_timedelta(
        timedelta(minutes=minutes), threshold=2, format="short", locale=l10n.language
    )


async def _report(
    request: Request, current: Current, choice: Choice
) -> tuple[Report, str, Localizer]:
    l10n = localizer_for(request, current)
    period, problem = choose_period(choice, _today(l10n), l10n)
    async with database(request) as db:
        data = await report(db, current.user.id, period)
    return data, problem, l10n


def _today(l10n: Localizer) -> date:
    return datetime.now(UTC).astimezone(l10n.tz).date()


def _choice(params: Sequence[tuple[str, str]]) -> Choice:
    values = dict(params)
    return Choice(
        period=values.get("period", DEFAULT_PRESET)[:10],
        start=values.get("from", "")[:10],
        end=values.get("to", "")[:10],
        by=values.get("by", "day")[:5],
    )


@router.get("/analytics")
async def analytics(request: Request, current: Current) -> HTMLResponse:
    """Charts of the user's own mail over a period of their choice (S7: theirs alone)."""
    choice = _choice(list(request.query_params.items()))
    data, problem, l10n = await _report(request, current, choice)
    root = request.app.state.runtime.settings.public_path
    shown = choice if not problem else Choice(by=choice.by)
    return await render(
        request,
        "analytics/page.html",
        {
            "data": data,
            "choice": choice,
            "problem": problem,
            "blocks": blocks(data, l10n, shown, root),
            "median": median_text(data.first_opens.median_minutes, l10n),
            "zone_name": current.user.timezone,
            "first_label": day_label(data.period.first_day, l10n, "day", long=True),
            "last_label": day_label(data.period.last_day, l10n, "day", long=True),
            "rate": lambda value: cell_text(Rate(value), l10n, "day"),
            "count": lambda value: cell_text(int(value), l10n, "day"),
        },
    )


@router.get("/analytics/{name}.csv")
async def analytics_csv(request: Request, current: Current, name: str) -> Response:
    """One chart's numbers as CSV (UTF-8 with BOM, so spreadsheets read the accents)."""
    if name not in CHARTS:
        raise HTTPException(404)
    choice = _choice(list(request.query_params.items()))
    data, problem, l10n = await _report(request, current, choice)
    if problem:
        raise HTTPException(422)
    table = tables(data, l10n)[name]
    filename = f"mailbeacon-{name}-{data.period.first_day}-{data.period.last_day}.csv"
    return Response(
        "\ufeff" + table.csv(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
