"""The OsmAnd protocol (Traccar Client apps, OsmAnd online tracking): the pure decoder against
the protocol notes (``/work/shared/protocols/osmand.md``: its four example requests, the time
formats, units, "unknown" markers and refusals), a hypothesis fuzz of the decoder, and the public
endpoint through the real app with its database effects (pings, latest position, device)."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.lib.clock import FrozenClock
from backend.tracking.models import Shift, ShiftSource
from backend.tracking.osmand import (
    KNOT_MPS,
    OsmandError,
    Report,
    decode,
    is_json_content_type,
)
from backend.tracking.points import Point
from tests.conftest import START, Factory

URL = "/api/v1/tracking/osmand"
FORM = "application/x-www-form-urlencoded; charset=UTF-8"

# The four requests of the protocol notes' "Examples" section, verbatim.
EXAMPLE_OLD_ANDROID = (
    "id=d-4f8a21&timestamp=1795414660&lat=56.9611237&lon=24.1442861&speed=19.049671570758818"
    "&bearing=52.29999923706055&altitude=9.100000381469727&accuracy=4.599999904632568&batt=85.0"
)
EXAMPLE_OSMAND = (
    "id=d-77c0e9&lat=52.5159&lon=13.3777&timestamp=1795427140007&hdop=8.0&altitude=38.0"
    "&speed=11.5&bearing=262.0"
)
EXAMPLE_JSON = (
    b'{"location":{"timestamp":"2026-11-23T12:14:47.118Z","coords":{"latitude":47.6205063,'
    b'"longitude":-122.3492774,"accuracy":4.7,"speed":13.42,"heading":181.6,"altitude":48.3},'
    b'"is_moving":true,"odometer":8431.7,"event":"","battery":{"level":0.9,"is_charging":false},'
    b'"activity":{"type":"in_vehicle"},"extras":{},'
    b'"_":"&id=d-b2193f&lat=47.6205063&lon=-122.3492774&timestamp=2026-11-23T12:14:47.118Z&"},'
    b'"device_id":"d-b2193f"}'
)
EXAMPLE_FORM = (
    b"id=d-0c5d62&lat=-34.5997&lon=-58.3923&timestamp=1795443320&accuracy=3.9000000953674316"
    b"&altitude=31.2&speed=22.74&bearing=287.29998779296875&batt=76&charge=false"
    b"&battery_health=good&battery_voltage=3968&battery_temp=29.0"
)


# --- helpers ----------------------------------------------------------------------------------


def _query(raw: str) -> list[tuple[str, str]]:
    """A URL query as the web framework hands it over (URL-decoded, `+` → space)."""
    return parse_qsl(raw, keep_blank_values=True)


def _kv(raw: str, *, body: bytes = b"", content_type: str | None = None) -> Report:
    return decode(query=_query(raw), body=body, content_type=content_type, received_at=START)


def _kv_error(raw: str) -> OsmandError:
    with pytest.raises(OsmandError) as caught:
        _kv(raw)
    return caught.value


def _json_body(
    *,
    device_id: Any = "d-json01",
    timestamp: Any = "2026-11-24T08:59:00.250Z",
    coords: dict[str, Any] | None = None,
    **location: Any,
) -> bytes:
    loc: dict[str, Any] = {
        "timestamp": timestamp,
        "coords": coords if coords is not None else {"latitude": 55.75, "longitude": 37.61},
        **location,
    }
    if timestamp is None:
        del loc["timestamp"]
    return json.dumps({"device_id": device_id, "location": loc}).encode()


def _json(body: bytes, content_type: str = "application/json") -> Report:
    return decode(query=[], body=body, content_type=content_type, received_at=START)


def _json_error(body: bytes) -> OsmandError:
    with pytest.raises(OsmandError) as caught:
        _json(body)
    return caught.value


def _point(report: Report) -> Point:
    assert report.point is not None
    return report.point


# --- the four examples of the protocol notes ----------------------------------------------------


def test_example_old_android_app_query_in_knots_and_unix_seconds() -> None:
    report = decode(
        query=_query(EXAMPLE_OLD_ANDROID), body=b"", content_type=None, received_at=START
    )
    assert report.device_id == "d-4f8a21"
    p = _point(report)
    assert p.recorded_at == datetime(2026, 11, 23, 6, 17, 40, tzinfo=UTC)
    assert p.lat == pytest.approx(56.9611237)
    assert p.lon == pytest.approx(24.1442861)
    assert p.speed_mps == pytest.approx(19.049671570758818 * KNOT_MPS)
    assert p.speed_mps == pytest.approx(9.8, abs=0.01 * KNOT_MPS)
    assert p.heading_deg == pytest.approx(52.29999923706055)
    assert p.altitude_m == pytest.approx(9.100000381469727)
    assert p.accuracy_m == pytest.approx(4.599999904632568)
    assert p.battery_pct == pytest.approx(85.0)
    assert p.mocked is False
    assert p.activity is None
    assert report.received_battery_pct == pytest.approx(85.0)
    assert report.charging is None
    assert report.alarm is None
    assert report.hdop is None
    assert report.valid is True
    assert report.extras == {}


def test_example_osmand_get_in_unix_ms_with_hdop_not_accuracy() -> None:
    report = decode(query=_query(EXAMPLE_OSMAND), body=b"", content_type=None, received_at=START)
    assert report.device_id == "d-77c0e9"
    p = _point(report)
    assert p.recorded_at == datetime(2026, 11, 23, 9, 45, 40, 7000, tzinfo=UTC)
    assert p.lat == pytest.approx(52.5159)
    assert p.lon == pytest.approx(13.3777)
    assert p.accuracy_m is None  # hdop is not accuracy
    assert report.hdop == pytest.approx(8.0)
    assert p.altitude_m == pytest.approx(38.0)
    assert p.speed_mps == pytest.approx(11.5 * KNOT_MPS)  # read as knots, like Traccar
    assert p.heading_deg == pytest.approx(262.0)
    assert p.battery_pct is None
    assert report.received_battery_pct is None
    assert report.valid is True
    assert report.extras == {}


def test_example_traccar_client_9_json_in_metres_per_second() -> None:
    report = _json(EXAMPLE_JSON)
    assert report.device_id == "d-b2193f"
    p = _point(report)
    assert p.recorded_at == datetime(2026, 11, 23, 12, 14, 47, 118000, tzinfo=UTC)
    assert p.lat == pytest.approx(47.6205063)
    assert p.lon == pytest.approx(-122.3492774)
    assert p.accuracy_m == pytest.approx(4.7)
    assert p.speed_mps == pytest.approx(13.42)  # m/s kept: 26.09 kn
    assert p.speed_mps is not None
    assert p.speed_mps / KNOT_MPS == pytest.approx(26.09, abs=0.01)
    assert p.heading_deg == pytest.approx(181.6)
    assert p.altitude_m == pytest.approx(48.3)
    assert p.battery_pct == pytest.approx(90.0)  # fraction 0.9 → percent
    assert p.activity == "in_vehicle"
    assert p.mocked is False
    assert report.received_battery_pct == pytest.approx(90.0)
    assert report.charging is False
    assert report.alarm is None
    assert report.hdop is None
    assert report.valid is True
    # `_` (the form copy for old servers) and the empty event are not extras.
    assert report.extras == {"is_moving": True, "odometer": pytest.approx(8431.7)}


def test_example_traccar_client_10_form_body() -> None:
    report = decode(query=[], body=EXAMPLE_FORM, content_type=FORM, received_at=START)
    assert report.device_id == "d-0c5d62"
    p = _point(report)
    assert p.recorded_at == datetime(2026, 11, 23, 14, 15, 20, tzinfo=UTC)
    assert p.lat == pytest.approx(-34.5997)
    assert p.lon == pytest.approx(-58.3923)
    assert p.accuracy_m == pytest.approx(3.9000000953674316)
    assert p.altitude_m == pytest.approx(31.2)
    assert p.speed_mps == pytest.approx(22.74 * KNOT_MPS)
    assert p.heading_deg == pytest.approx(287.29998779296875)
    assert p.battery_pct == pytest.approx(76.0)
    assert report.received_battery_pct == pytest.approx(76.0)
    assert report.charging is False
    assert report.hdop is None
    assert report.valid is True
    assert report.extras == {
        "battery_health": "good",
        "battery_voltage": pytest.approx(3968.0),
        "battery_temp": pytest.approx(29.0),
    }


def test_the_examples_are_within_a_week_of_the_test_clock() -> None:
    """The examples are realistic for the frozen clock (ingest keeps 7 days, 5 min ahead)."""
    for report in (
        _kv(EXAMPLE_OLD_ANDROID),
        _kv(EXAMPLE_OSMAND),
        _json(EXAMPLE_JSON),
        decode(query=[], body=EXAMPLE_FORM, content_type=FORM, received_at=START),
    ):
        recorded = _point(report).recorded_at
        assert START - timedelta(days=7) < recorded < START


# --- timestamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1795414660", datetime(2026, 11, 23, 6, 17, 40, tzinfo=UTC)),
        # The last value read as seconds, then the first one read as milliseconds.
        ("2147483646", datetime(2038, 1, 19, 3, 14, 6, tzinfo=UTC)),
        ("2147483647", datetime(1970, 1, 25, 20, 31, 23, 647000, tzinfo=UTC)),
        ("1795414660000", datetime(2026, 11, 23, 6, 17, 40, tzinfo=UTC)),
        ("1795414660123", datetime(2026, 11, 23, 6, 17, 40, 123000, tzinfo=UTC)),
    ],
)
def test_unix_seconds_below_2_pow_31_minus_1_else_milliseconds(
    raw: str, expected: datetime
) -> None:
    p = _point(_kv(f"id=d-1&lat=1&lon=2&timestamp={raw}"))
    assert p.recorded_at == expected
    assert p.recorded_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw_query_value", "expected"),
    [
        ("2026-11-23T12:14:47.118Z", datetime(2026, 11, 23, 12, 14, 47, 118000, tzinfo=UTC)),
        ("2026-11-23T12:14:47Z", datetime(2026, 11, 23, 12, 14, 47, tzinfo=UTC)),
        ("2026-11-23T15:14:47%2B03:00", datetime(2026, 11, 23, 12, 14, 47, tzinfo=UTC)),
        ("2026-11-23T15:14:47.5%2B03:00", datetime(2026, 11, 23, 12, 14, 47, 500000, tzinfo=UTC)),
        ("2026-11-23T09:14:47-03:00", datetime(2026, 11, 23, 12, 14, 47, tzinfo=UTC)),
        # `+03:00` sent unescaped: URL-decoding turned the `+` into a space.
        ("2026-11-23T15:14:47+03:00", datetime(2026, 11, 23, 12, 14, 47, tzinfo=UTC)),
        ("2026-11-23T15:14:47.118+03:00", datetime(2026, 11, 23, 12, 14, 47, 118000, tzinfo=UTC)),
        # `yyyy-MM-dd HH:mm:ss` is UTC, whether the space came as `+` or `%20`.
        ("2026-11-23+12:14:47", datetime(2026, 11, 23, 12, 14, 47, tzinfo=UTC)),
        ("2026-11-23%2012:14:47", datetime(2026, 11, 23, 12, 14, 47, tzinfo=UTC)),
    ],
)
def test_text_timestamps(raw_query_value: str, expected: datetime) -> None:
    p = _point(_kv(f"id=d-1&lat=1&lon=2&timestamp={raw_query_value}"))
    assert p.recorded_at == expected
    assert p.recorded_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-23T12:14:47",  # ISO without a zone
        "2026-11-23T12:14:47.118",
        "yesterday",
        "2026-13-01 00:00:00",
        "2026-11-23 25:00:00",
        "12:14:47",
        "-1795414660",
        "1.7954e9",
    ],
)
def test_unreadable_timestamps_are_refused(raw: str) -> None:
    error = _kv_error(f"id=d-1&lat=1&lon=2&timestamp={raw}")
    assert error.field == "timestamp"
    assert error.reason


def test_missing_timestamp_means_the_time_of_receipt_in_utc() -> None:
    received = datetime(2026, 11, 24, 12, 0, 5, tzinfo=timezone(timedelta(hours=3)))
    for raw in ("id=d-1&lat=1&lon=2", "id=d-1&lat=1&lon=2&timestamp="):
        report = decode(query=_query(raw), body=b"", content_type=None, received_at=received)
        recorded = _point(report).recorded_at
        assert recorded == datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)
        assert recorded.utcoffset() == timedelta(0)


def test_json_form_requires_its_timestamp() -> None:
    error = _json_error(_json_body(timestamp=None))
    assert error.field == "location.timestamp"
    assert error.reason == "required"


def test_json_timestamp_without_zone_or_of_wrong_type_is_refused() -> None:
    for ts in ("2026-11-23T12:14:47.118", True, 12.5, {"t": 1}, -5):
        assert _json_error(_json_body(timestamp=ts)).field == "location.timestamp"


# --- key/value form ---------------------------------------------------------------------------


def test_location_pair_replaces_lat_and_lon() -> None:
    p = _point(_kv("id=d-1&location=56.9611237,24.1442861"))
    assert (p.lat, p.lon) == pytest.approx((56.9611237, 24.1442861))
    p = _point(_kv("id=d-1&location=-5.123E-4,%20-58.3923"))
    assert (p.lat, p.lon) == pytest.approx((-0.0005123, -58.3923))


@pytest.mark.parametrize(
    "value", ["56.96", "56.96,24.14,10", "56.96;24.14", "north,24.14", "NaN,24.14", "91,24.14"]
)
def test_location_must_be_exactly_two_numbers_in_range(value: str) -> None:
    assert _kv_error(f"id=d-1&location={value}").field == "location"


def test_deviceid_is_an_alias_of_id_and_an_id_is_required() -> None:
    assert _kv("deviceid=d-alias&lat=1&lon=2").device_id == "d-alias"
    assert _kv("id=&deviceid=d-alias&lat=1&lon=2").device_id == "d-alias"
    assert _kv("id=d-main&deviceid=d-alias&lat=1&lon=2").device_id == "d-main"
    assert _kv("id=%20d-spaced%20&lat=1&lon=2").device_id == "d-spaced"
    for raw in ("lat=1&lon=2", "id=&lat=1&lon=2", "id=%20%20&lat=1&lon=2"):
        error = _kv_error(raw)
        assert (error.field, error.reason) == ("id", "required")


def test_device_id_with_control_characters_or_too_long_is_refused() -> None:
    assert _kv_error("id=d-1%00x&lat=1&lon=2").field == "id"
    assert _kv_error(f"id={'x' * 300}&lat=1&lon=2").reason == "too long"


def test_url_query_wins_over_the_form_body_for_the_same_key() -> None:
    report = decode(
        query=_query("id=d-url&lat=10.5&token=abc"),
        body=b"id=d-body&lat=20.5&lon=30.25&batt=55&token=zzz",
        content_type=FORM,
        received_at=START,
    )
    assert report.device_id == "d-url"
    p = _point(report)
    assert p.lat == pytest.approx(10.5)  # from the URL
    assert p.lon == pytest.approx(30.25)  # only in the body: still read
    assert p.battery_pct == pytest.approx(55.0)
    assert report.extras == {"token": "abc"}


def test_a_body_without_content_type_is_read_as_a_form() -> None:
    report = decode(
        query=[], body=b"id=d-bare&lat=1.5&lon=2.5", content_type=None, received_at=START
    )
    assert report.device_id == "d-bare"
    assert _point(report).lat == pytest.approx(1.5)


def test_within_one_source_the_last_occurrence_wins() -> None:
    assert _point(_kv("id=d-1&lat=1&lat=3&lon=2")).lat == pytest.approx(3.0)


def test_repeated_cell_and_wifi_are_all_kept() -> None:
    report = _kv(
        "id=d-1&cell=250,1,1234,5678,-70&cell=250,1,1234,5679&wifi=aa-bb-cc-dd-ee-ff,-60"
        "&wifi=11:22:33:44:55:66,-71"
    )
    assert report.point is None  # towers only: no position
    assert report.extras["cell"] == "250,1,1234,5678,-70;250,1,1234,5679"
    assert report.extras["wifi"] == "aa-bb-cc-dd-ee-ff,-60;11:22:33:44:55:66,-71"


def test_scientific_notation_near_zero() -> None:
    p = _point(_kv("id=d-1&lat=-5.123E-4&lon=1.5e-3&speed=2E1&altitude=-1.0E2"))
    assert p.lat == pytest.approx(-0.0005123)
    assert p.lon == pytest.approx(0.0015)
    assert p.speed_mps == pytest.approx(20 * KNOT_MPS)
    assert p.altitude_m == pytest.approx(-100.0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("lat=NaN&lon=2", "lat"),
        ("lat=nan&lon=2", "lat"),
        ("lat=1&lon=Infinity", "lon"),
        ("lat=-Infinity&lon=2", "lat"),
        ("lat=inf&lon=2", "lat"),
        ("lat=1e400&lon=2", "lat"),
        ("lat=91&lon=2", "lat"),
        ("lat=-90.000001&lon=2", "lat"),
        ("lat=1&lon=181", "lon"),
        ("lat=1&lon=-180.5", "lon"),
        ("lat=abc&lon=2", "lat"),
        ("lat=0x10&lon=2", "lat"),
        ("lat=1_0&lon=2", "lat"),
        ("lat=%D9%A1&lon=2", "lat"),  # Arabic-Indic digit one: float() takes it, Java not
        ("lat=1", "lon"),
        ("lon=2", "lat"),
        ("lat=1&lon=2&speed=fast", "speed"),
        ("lat=1&lon=2&bearing=NaN", "bearing"),
        ("lat=1&lon=2&accuracy=Infinity", "accuracy"),
        ("lat=1&lon=2&batt=full", "batt"),
        ("lat=1&lon=2&valid=maybe", "valid"),
        ("lat=1&lon=2&charge=yes", "charge"),
    ],
)
def test_non_finite_out_of_range_or_unreadable_values_are_refused(raw: str, field: str) -> None:
    error = _kv_error(f"id=d-1&{raw}")
    assert error.field == field
    assert error.reason


def test_boundary_coordinates_are_accepted() -> None:
    p = _point(_kv("id=d-1&lat=-90&lon=180"))
    assert (p.lat, p.lon) == (-90.0, 180.0)
    p = _point(_kv("id=d-1&lat=90.0&lon=-180.0"))
    assert (p.lat, p.lon) == (90.0, -180.0)


def test_unknown_markers_become_none_in_the_key_value_form() -> None:
    report = _kv("id=d-1&lat=1&lon=2&speed=-1&bearing=-1&accuracy=0&batt=-1&hdop=-1")
    p = _point(report)
    assert p.speed_mps is None
    assert p.heading_deg is None
    assert p.accuracy_m is None
    assert p.battery_pct is None
    assert report.received_battery_pct is None
    assert report.hdop is None
    assert _point(_kv("id=d-1&lat=1&lon=2&accuracy=-3.5")).accuracy_m is None
    # ... and real zeros stay zeros where zero is a value.
    p = _point(_kv("id=d-1&lat=1&lon=2&speed=0&bearing=0&batt=0"))
    assert (p.speed_mps, p.heading_deg, p.battery_pct) == (0.0, 0.0, 0.0)


def test_implausible_measures_become_unknown() -> None:
    p = _point(_kv("id=d-1&lat=1&lon=2&speed=1e39&altitude=1e300&accuracy=1e300"))
    assert (p.speed_mps, p.altitude_m, p.accuracy_m) == (None, None, None)
    p = _point(_kv("id=d-1&lat=1&lon=2&speed=388&altitude=-1000&accuracy=100000"))
    assert p.speed_mps == pytest.approx(388 * KNOT_MPS)  # 199.6 m/s: still plausible
    assert (p.altitude_m, p.accuracy_m) == (-1000.0, 100_000.0)
    p = _point(_kv("id=d-1&lat=1&lon=2&speed=389&altitude=20000.5&accuracy=100000.5"))
    assert (p.speed_mps, p.altitude_m, p.accuracy_m) == (None, None, None)
    report = _json(
        _json_body(
            coords={"latitude": 1, "longitude": 2, "speed": 200.5, "altitude": -1e300},
            activity={"type": "a" * 31},
        )
    )
    p = _point(report)
    assert (p.speed_mps, p.altitude_m, p.activity) == (None, None, None)
    assert _point(_json(_json_body(activity={"type": "b" * 30}))).activity == "b" * 30


def test_heading_is_the_alias_of_bearing() -> None:
    assert _point(_kv("id=d-1&lat=1&lon=2&heading=90.5")).heading_deg == pytest.approx(90.5)
    assert _point(_kv("id=d-1&lat=1&lon=2&bearing=45&heading=90")).heading_deg == 45.0


def test_flags_alarm_and_mock_of_the_key_value_form() -> None:
    report = _kv("id=d-1&lat=1&lon=2&charge=true&valid=0&mock=true&alarm=sos&batt=87.0")
    assert report.charging is True
    assert report.valid is False
    assert report.alarm == "sos"
    assert _point(report).mocked is True
    assert report.received_battery_pct == pytest.approx(87.0)
    report = _kv("id=d-1&lat=1&lon=2&valid=TRUE&mock=false")
    assert report.valid is True
    assert _point(report).mocked is False
    assert report.charging is None


def test_heartbeat_without_position_keeps_the_battery() -> None:
    report = _kv("id=d-0c5d62&timestamp=1795443320&batt=64&charge=true")
    assert report.device_id == "d-0c5d62"
    assert report.point is None
    assert report.received_battery_pct == pytest.approx(64.0)
    assert report.charging is True
    assert report.valid is True


def test_unknown_keys_are_kept_as_extras_number_bool_or_text() -> None:
    report = _kv(
        "id=d-1&lat=1&lon=2&odometer=12.5&count=7&is_moving=true&plugged=FALSE&event=motionchange"
        "&driverUniqueId=00123&imei=012345678901234&nothing=&weird=1e500"
    )
    assert report.extras == {
        "odometer": 12.5,
        "count": 7.0,
        "is_moving": True,
        "plugged": False,
        "event": "motionchange",
        "driverUniqueId": "00123",  # identifiers stay text (leading zeros)
        "imei": "012345678901234",
        "nothing": "",
        "weird": "1e500",  # not a finite number: kept as text, not an error
    }


# --- JSON form --------------------------------------------------------------------------------


def test_json_latitude_given_as_text_is_refused() -> None:
    error = _json_error(_json_body(coords={"latitude": "north", "longitude": 24.1}))
    assert error.field == "location.coords.latitude"
    error = _json_error(_json_body(coords={"latitude": 56.9, "longitude": "24.1"}))
    assert error.field == "location.coords.longitude"
    error = _json_error(_json_body(coords={"latitude": True, "longitude": 24.1}))
    assert error.field == "location.coords.latitude"


def test_json_coordinates_out_of_range_or_missing_are_refused() -> None:
    for coords, field in (
        ({"latitude": 91, "longitude": 0}, "location.coords.latitude"),
        ({"latitude": 0, "longitude": 181}, "location.coords.longitude"),
        ({"latitude": 10**400, "longitude": 0}, "location.coords.latitude"),
        ({"longitude": 0}, "location.coords.latitude"),
        ({"latitude": 0, "longitude": None}, "location.coords.longitude"),
    ):
        assert _json_error(_json_body(coords=coords)).field == field
    assert _json_error(_json_body(coords={}, device_id="d-1")).field.startswith("location.coords")


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_json_bare_nan_or_infinity_is_refused(token: bytes) -> None:
    body = (
        b'{"device_id":"d-1","location":{"timestamp":"2026-11-24T08:59:00Z",'
        b'"coords":{"latitude":' + token + b',"longitude":24.1}}}'
    )
    # Python's json module would accept it; the decoder must not.
    assert json.loads(body)["location"]["coords"]["latitude"] != 0
    error = _json_error(body)
    assert error.field == "body"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"[1, 2]", "body"),
        (b'"text"', "body"),
        (b'{"location": {}}', "device_id"),
        (b'{"device_id": 42, "location": {}}', "device_id"),
        (b'{"device_id": "  ", "location": {}}', "device_id"),
        (b'{"device_id": "d-1"}', "location"),
        (b'{"device_id": "d-1", "location": "here"}', "location"),
        (
            b'{"device_id":"d-1","location":{"timestamp":"2026-11-24T08:59:00Z","coords":[1,2]}}',
            "location.coords",
        ),
        (
            b'{"device_id":"d-1","location":{"timestamp":"2026-11-24T08:59:00Z",'
            b'"coords":{"latitude":1,"longitude":2},"battery":{"level":"high"}}}',
            "location.battery.level",
        ),
    ],
)
def test_json_shape_errors_name_the_field(body: bytes, field: str) -> None:
    assert _json_error(body).field == field


def test_unknown_markers_become_none_in_the_json_form() -> None:
    report = _json(
        _json_body(
            coords={
                "latitude": 1,
                "longitude": 2,
                "speed": -1,
                "heading": -1,
                "accuracy": 0,
                "altitude": None,
                "speed_accuracy": -1,
                "floor": None,
            },
            battery={"level": -1, "is_charging": None},
        )
    )
    p = _point(report)
    assert p.speed_mps is None
    assert p.heading_deg is None
    assert p.accuracy_m is None
    assert p.altitude_m is None
    assert p.battery_pct is None
    assert report.received_battery_pct is None
    assert report.charging is None
    assert report.extras == {}


def test_json_alarm_mock_extras_and_the_default_object_of_early_builds() -> None:
    report = _json(
        _json_body(
            coords={
                "latitude": -33.8688,
                "longitude": 151.2093,
                "accuracy": 12,
                "speed": 0,
                "heading": 370,
                "altitude": 5,
                "speed_accuracy": 0.5,
                "heading_accuracy": -1,
                "altitude_accuracy": 3,
                "ellipsoidal_altitude": 27.5,
                "floor": None,
            },
            uuid="5f6b-11",
            age=1234,
            mock=True,
            is_moving=False,
            event="motionchange",
            odometer=12,
            activity={"type": "walking", "confidence": 80},
            battery={"level": 0.55, "is_charging": True},
            extras={"alarm": "sos", "shift": "night", "n": 3, "ok": False, "nested": {"a": [1]}},
        )
    )
    p = _point(report)
    assert (p.lat, p.lon) == pytest.approx((-33.8688, 151.2093))
    assert p.accuracy_m == 12.0
    assert p.speed_mps == 0.0
    assert p.heading_deg == pytest.approx(10.0)
    assert p.mocked is True
    assert p.activity == "walking"
    assert p.battery_pct == pytest.approx(55.0)
    assert report.charging is True
    assert report.alarm == "sos"
    assert report.extras == {
        "shift": "night",
        "n": 3.0,
        "ok": False,
        "nested": '{"a":[1]}',
        "is_moving": False,
        "event": "motionchange",
        "uuid": "5f6b-11",
        "odometer": 12.0,
        "age": 1234.0,
        "speed_accuracy": 0.5,
        "altitude_accuracy": 3.0,
        "ellipsoidal_altitude": 27.5,
    }


def test_json_location_alarm_is_read_before_extras_alarm() -> None:
    report = _json(_json_body(alarm="sos", extras={"alarm": "lowBattery"}))
    assert report.alarm == "sos"
    assert "alarm" not in report.extras


def test_json_ignores_the_query_and_the_form_copy() -> None:
    report = decode(
        query=_query("id=d-query&lat=10&lon=10"),
        body=EXAMPLE_JSON,
        content_type="application/json",
        received_at=START,
    )
    assert report.device_id == "d-b2193f"
    assert _point(report).lat == pytest.approx(47.6205063)


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON ; charset=UTF-8", True),
        ("application/vnd.x+json", True),
        ("application/vnd.traccar.position+json; v=2", True),
        ("text/json", True),
        (None, False),
        ("", False),
        ("json", False),
        ("application/x-www-form-urlencoded; charset=UTF-8", False),
        ("text/plain", False),
        ("application/jsonp", False),
        ("multipart/form-data; boundary=json", False),
    ],
)
def test_json_content_type_detection(content_type: str | None, is_json: bool) -> None:
    assert is_json_content_type(content_type) is is_json
    report = decode(query=[], body=EXAMPLE_JSON, content_type=content_type, received_at=START)
    assert report.device_id == "d-b2193f"
    p = _point(report)
    assert p.lat == pytest.approx(47.6205063)
    if is_json:
        assert p.speed_mps == pytest.approx(13.42)
        assert p.activity == "in_vehicle"
    else:
        # Read as a form, only the `_` copy for old servers is understood: id, lat, lon, time.
        assert p.speed_mps is None
        assert p.activity is None
        assert p.recorded_at == datetime(2026, 11, 23, 12, 14, 47, 118000, tzinfo=UTC)


def test_error_messages_never_quote_the_request() -> None:
    secret_id = "phone-of-anna-7731"
    cases: list[tuple[list[tuple[str, str]], bytes, str | None]] = [
        ([("id", secret_id), ("lat", "91.4417123"), ("lon", "24.1442861")], b"", None),
        ([("id", secret_id), ("lat", "56.9611237"), ("lon", "181.5551234")], b"", None),
        ([("id", secret_id), ("location", "56.9611237,24.1442861,3.3")], b"", None),
        ([("id", secret_id), ("lat", "56.9611237"), ("lon", "east-24.1442861")], b"", None),
        ([("id", secret_id), ("timestamp", "2026-11-23T12:14:47.118")], b"", None),
        ([("id", secret_id + "\x01"), ("lat", "56.9611237"), ("lon", "24.1442861")], b"", None),
        ([("id", secret_id * 20)], b"", None),
        (
            [],
            _json_body(
                device_id=secret_id, coords={"latitude": "56.9611237", "longitude": 24.1442861}
            ),
            "application/json",
        ),
        (
            [],
            _json_body(device_id=secret_id, coords={"latitude": 56.9611237, "longitude": 190.25}),
            "application/json",
        ),
        ([], b'{"device_id":"' + secret_id.encode() + b'", "lat": 56.9611237', "application/json"),
    ]
    for query, body, content_type in cases:
        with pytest.raises(OsmandError) as caught:
            decode(query=query, body=body, content_type=content_type, received_at=START)
        message = f"{caught.value} {caught.value.field} {caught.value.reason} {caught.value.args}"
        for secret in (secret_id, "56.961", "24.144", "91.44", "181.55", "190.25", "3.3"):
            assert secret not in message


# --- hypothesis fuzz of the decoder -------------------------------------------------------------


def _assert_sane(report: Report) -> None:
    assert isinstance(report, Report)
    assert report.device_id
    assert report.device_id == report.device_id.strip()
    if report.point is not None:
        p = report.point
        assert math.isfinite(p.lat)
        assert -90.0 <= p.lat <= 90.0
        assert math.isfinite(p.lon)
        assert -180.0 <= p.lon <= 180.0
        assert p.recorded_at.tzinfo is not None
        assert p.recorded_at.utcoffset() == timedelta(0)
        for measure in (p.accuracy_m, p.speed_mps, p.heading_deg, p.altitude_m, p.battery_pct):
            assert measure is None or math.isfinite(measure)
        assert p.accuracy_m is None or 0 < p.accuracy_m <= 100_000
        assert p.speed_mps is None or 0 <= p.speed_mps <= 200
        assert p.altitude_m is None or -1000 <= p.altitude_m <= 20_000
        assert p.heading_deg is None or 0 <= p.heading_deg < 360
        assert p.battery_pct is None or 0 <= p.battery_pct <= 100
        if p.activity is not None:
            assert 0 < len(p.activity) <= 30
            assert "\x00" not in p.activity
            p.activity.encode("utf-8")
    if report.alarm is not None:
        assert report.alarm
        assert "\x00" not in report.alarm
        report.alarm.encode("utf-8")
    for key, value in report.extras.items():
        assert isinstance(key, str)
        assert isinstance(value, str | float | bool)
        if isinstance(value, float):
            assert math.isfinite(value)
        if isinstance(value, str):
            assert "\x00" not in value
            value.encode("utf-8")  # storable text


def _decode_or_refuse(
    query: list[tuple[str, str]], body: bytes, content_type: str | None
) -> Report | None:
    try:
        report = decode(query=query, body=body, content_type=content_type, received_at=START)
    except OsmandError as exc:
        assert exc.field
        assert exc.reason
        return None
    _assert_sane(report)
    return report


_KEYS = st.sampled_from(
    [
        "id",
        "deviceid",
        "timestamp",
        "lat",
        "lon",
        "location",
        "speed",
        "bearing",
        "heading",
        "altitude",
        "accuracy",
        "hdop",
        "batt",
        "charge",
        "valid",
        "mock",
        "alarm",
        "cell",
        "wifi",
        "imei",
        "driverUniqueId",
    ]
)
_NUMBERISH = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        ["NaN", "Infinity", "-inf", "1e400", "-5.123E-4", "90", "-180", "91", "2147483647", " 1 "]
    ),
    st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{0,8})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
)
_TIMES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    st.integers(min_value=0, max_value=10**25).map(str),
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}.{0,8}", fullmatch=True
    ),
)
_VALUES = st.one_of(st.text(max_size=30), _NUMBERISH, _TIMES, st.just("true"))
_CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "",
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.x+json",
            FORM,
            "text/plain",
        ]
    ),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=8),
    body=st.binary(max_size=200),
    content_type=_CONTENT_TYPES,
)
def test_fuzz_arbitrary_text_and_bytes(
    query: list[tuple[str, str]], body: bytes, content_type: str | None
) -> None:
    _decode_or_refuse(query, body, content_type)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([[], [("id", "d-1"), ("lat", "55.75"), ("lon", "37.61")]]),
    query=st.lists(st.tuples(_KEYS, _VALUES), max_size=12),
    body_pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=6),
)
def test_fuzz_key_value_form_with_protocol_keys(
    base: list[tuple[str, str]], query: list[tuple[str, str]], body_pairs: list[tuple[str, str]]
) -> None:
    query = base + query  # a valid position first, so that the other keys reach the point
    body = urlencode(body_pairs, errors="surrogatepass").encode()
    report = _decode_or_refuse(query, body, None)
    if report is not None and report.point is not None:
        values = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        values.update(query)
        # A point always comes from coordinates that were sent.
        assert any(k in values for k in ("lat", "location"))


_MEASURES = st.sampled_from(
    ["speed", "bearing", "heading", "altitude", "accuracy", "hdop", "batt", "location", "valid"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(measures=st.lists(st.tuples(_MEASURES, _NUMBERISH), max_size=5))
def test_fuzz_measures_of_a_valid_position(measures: list[tuple[str, str]]) -> None:
    query = [("id", "d-1"), ("lat", "55.75"), ("lon", "37.61"), *measures]
    try:
        report = decode(query=query, body=b"", content_type=None, received_at=START)
    except OsmandError as exc:
        assert exc.field in {key for key, _ in measures}
        return
    _assert_sane(report)
    assert report.point is not None


_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["NaN", "Infinity", "north", "", "2026-11-24T08:59:00Z"]),
)
_JSON_ANY = st.recursive(
    _JSON_LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_COORD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-200, max_value=200),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-200, max_value=200),
    st.sampled_from(["NaN", "north", "56.9"]),
    st.none(),
    st.booleans(),
)
_JSON_TIME = st.one_of(
    _TIMES,
    st.integers(min_value=-(10**30), max_value=10**30),
    _JSON_LEAF,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(...), strategy)


@st.composite
def _json_requests(
    draw: st.DrawFn,
    device_ids: st.SearchStrategy[Any] | None = None,
    times: st.SearchStrategy[Any] = _JSON_TIME,
) -> bytes:
    coords = {
        "latitude": draw(_maybe(_COORD)),
        "longitude": draw(_maybe(_COORD)),
        "accuracy": draw(_maybe(_COORD)),
        "speed": draw(_maybe(_COORD)),
        "heading": draw(_maybe(_COORD)),
        "altitude": draw(_maybe(_COORD)),
        "speed_accuracy": draw(_maybe(_JSON_LEAF)),
        "floor": draw(_maybe(_JSON_LEAF)),
        "ellipsoidal_altitude": draw(_maybe(_JSON_ANY)),
    }
    location = {
        "timestamp": draw(_maybe(times)),
        "coords": draw(st.one_of(st.just(coords), _JSON_ANY)),
        "battery": draw(
            _maybe(
                st.one_of(
                    st.fixed_dictionaries(
                        {"level": _COORD, "is_charging": st.one_of(st.booleans(), _JSON_LEAF)}
                    ),
                    _JSON_ANY,
                )
            )
        ),
        "activity": draw(_maybe(_JSON_ANY)),
        "extras": draw(_maybe(st.dictionaries(st.text(max_size=8), _JSON_ANY, max_size=5))),
        "alarm": draw(_maybe(_JSON_LEAF)),
        "mock": draw(_maybe(_JSON_LEAF)),
        "is_moving": draw(_maybe(_JSON_LEAF)),
        "event": draw(_maybe(_JSON_LEAF)),
        "odometer": draw(_maybe(_JSON_LEAF)),
        "age": draw(_maybe(_JSON_LEAF)),
        "uuid": draw(_maybe(_JSON_LEAF)),
    }
    root = {
        "device_id": draw(
            _maybe(st.one_of(st.text(max_size=20), _JSON_LEAF))
            if device_ids is None
            else device_ids
        ),
        "location": draw(st.one_of(st.just(location), _JSON_ANY)),
        "other": draw(_maybe(_JSON_ANY)),
    }

    def prune(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: prune(v) for k, v in value.items() if v is not ...}
        return value

    # json.dumps writes bare NaN / Infinity tokens and huge integers, as a broken client might.
    text_body = json.dumps(prune(root), allow_nan=True, ensure_ascii=draw(st.booleans()))
    return text_body.encode("utf-8", "surrogatepass")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_json_requests(), content_type=st.sampled_from(["application/json", "x/y+json"]))
def test_fuzz_structured_json(body: bytes, content_type: str) -> None:
    _decode_or_refuse([("id", "d-query"), ("lat", "1"), ("lon", "2")], body, content_type)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
    knots=st.floats(min_value=0, max_value=388),  # up to 199.6 m/s
    seconds=st.integers(min_value=0, max_value=2**31 - 2),
)
def test_fuzz_valid_key_value_points_round_trip(
    lat: float, lon: float, knots: float, seconds: int
) -> None:
    report = _kv(f"id=d-1&lat={lat!r}&lon={lon!r}&speed={knots!r}&timestamp={seconds}")
    p = _point(report)
    assert p.lat == lat
    assert p.lon == lon
    assert p.speed_mps == pytest.approx(knots * KNOT_MPS)
    assert p.recorded_at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


# --- the endpoint through the app ---------------------------------------------------------------


async def _register(
    client: httpx.AsyncClient, factory: Factory, user: User, identifier: str
) -> uuid.UUID:
    created = await client.post(
        "/api/v1/tracking/devices",
        json={"identifier": identifier, "name": "Pixel 8"},
        headers=factory.auth(user),
    )
    assert created.status_code == 201, created.text
    return uuid.UUID(created.json()["id"])


async def _start_shift(client: httpx.AsyncClient, factory: Factory, user: User) -> None:
    started = await client.post("/api/v1/tracking/shifts/start", headers=factory.auth(user))
    assert started.status_code == 201, started.text


async def _pings(session: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    rows = await session.execute(
        text(
            "SELECT user_id, device_id, organization_id, recorded_at, received_at, lat, lon,"
            " accuracy_m, speed_mps, heading_deg, altitude_m, battery_pct, mocked, activity"
            " FROM pings WHERE user_id = :u ORDER BY recorded_at"
        ),
        {"u": user_id},
    )
    return list(rows.all())


async def _latest(session: AsyncSession, user_id: uuid.UUID) -> Any:
    rows = await session.execute(
        text(
            "SELECT recorded_at, lat, lon, speed_mps, battery_pct, activity,"
            " ST_Y(location::geometry), ST_X(location::geometry)"
            " FROM latest_positions WHERE user_id = :u"
        ),
        {"u": user_id},
    )
    return rows.one_or_none()


async def _device(session: AsyncSession, identifier: str) -> Any:
    rows = await session.execute(
        text("SELECT last_seen_at, battery_pct FROM devices WHERE identifier = :i"),
        {"i": identifier},
    )
    return rows.one()


def _assert_empty(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.content == b""
    assert response.headers.get("content-length") == "0"
    # No login: every request to the endpoint is sent without credentials.
    assert "authorization" not in response.request.headers
    assert "cookie" not in response.request.headers


async def _worker_on_shift(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, identifier: str
) -> tuple[User, uuid.UUID]:
    """A field user with a registered device and a shift that started ten minutes ago."""
    world = await factory.world()
    user = world.measurer_a
    device_id = await _register(client, factory, user, identifier)
    await _start_shift(client, factory, user)
    clock.advance(timedelta(minutes=10))
    return user, device_id


async def test_unknown_device_gets_400_and_nothing_is_stored(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    user, _ = await _worker_on_shift(client, factory, clock, "d-known1")
    ts = int((clock.now() - timedelta(minutes=1)).timestamp())
    response = await client.post(f"{URL}?id=d-unknown&lat=56.96&lon=24.14&timestamp={ts}")
    _assert_empty(response, 400)
    response = await client.post(f"{URL}?lat=56.96&lon=24.14&timestamp={ts}")  # no id at all
    _assert_empty(response, 400)
    assert await _pings(session, user.id) == []
    assert await _latest(session, user.id) is None
    unknown = await session.scalar(
        text("SELECT count(*) FROM pings WHERE received_at = :now"), {"now": clock.now()}
    )
    assert unknown == 0


async def test_a_point_of_a_worker_on_shift_is_stored_once(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    user, device_id = await _worker_on_shift(client, factory, clock, "d-4f8a21")
    fix = (clock.now() - timedelta(seconds=90)).replace(microsecond=0)
    url = (
        f"{URL}?id=d-4f8a21&timestamp={int(fix.timestamp())}&lat=56.9611237&lon=24.1442861"
        "&speed=19.049671570758818&bearing=52.29999923706055&altitude=9.100000381469727"
        "&accuracy=4.599999904632568&batt=85.0"
    )
    response = await client.post(url)  # old Android app: POST, no body, no Content-Type
    _assert_empty(response, 200)

    rows = await _pings(session, user.id)
    assert len(rows) == 1
    row = rows[0]
    assert row.user_id == user.id
    assert row.device_id == device_id
    assert row.organization_id == user.organization_id
    assert row.recorded_at == fix
    assert row.received_at == clock.now()
    assert row.lat == pytest.approx(56.9611237, abs=1e-9)
    assert row.lon == pytest.approx(24.1442861, abs=1e-9)
    assert row.speed_mps == pytest.approx(19.049671570758818 * KNOT_MPS, rel=1e-6)
    assert row.heading_deg == pytest.approx(52.3, rel=1e-6)
    assert row.altitude_m == pytest.approx(9.1, rel=1e-6)
    assert row.accuracy_m == pytest.approx(4.6, rel=1e-6)
    assert row.battery_pct == pytest.approx(85.0)
    assert row.mocked is False
    assert row.activity is None

    latest = await _latest(session, user.id)
    assert latest is not None
    assert latest.recorded_at == fix
    assert (latest.lat, latest.lon) == pytest.approx((56.9611237, 24.1442861))
    assert latest[6] == pytest.approx(56.9611237)  # the geography point, latitude...
    assert latest[7] == pytest.approx(24.1442861)  # ... and longitude (lon first in WKT)
    assert latest.battery_pct == pytest.approx(85.0)

    device = await _device(session, "d-4f8a21")
    assert device.last_seen_at == clock.now()
    assert device.battery_pct == pytest.approx(85.0)

    # The phone resends the same point (it did not see our answer): 200, still one row.
    clock.advance(timedelta(seconds=30))
    again = await client.post(url)
    _assert_empty(again, 200)
    rows = await _pings(session, user.id)
    assert len(rows) == 1
    assert rows[0].received_at == clock.now() - timedelta(seconds=30)


async def test_points_dropped_by_policy_still_get_200(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    user = world.installer_a
    await _register(client, factory, user, "d-offshift")
    now = clock.now()
    # No shift at all: the point is understood, answered 200 and not kept.
    recent = int((now - timedelta(minutes=2)).timestamp())
    response = await client.post(f"{URL}?id=d-offshift&lat=55.75&lon=37.61&timestamp={recent}")
    _assert_empty(response, 200)
    assert await _pings(session, user.id) == []
    assert await _latest(session, user.id) is None
    device = await _device(session, "d-offshift")
    assert device.last_seen_at == now  # it was heard from, though

    # On shift, but older than 7 days or too far in the future: 200 and dropped too.
    await _start_shift(client, factory, user)
    clock.advance(timedelta(minutes=10))
    for moment in (
        clock.now() - timedelta(days=8),
        clock.now() + timedelta(minutes=30),
    ):
        ms = int(moment.timestamp() * 1000)
        response = await client.get(f"{URL}?id=d-offshift&lat=55.75&lon=37.61&timestamp={ms}")
        _assert_empty(response, 200)
    # An invalid fix (valid=false) is understood but not stored.
    response = await client.get(
        f"{URL}?id=d-offshift&lat=55.75&lon=37.61&valid=false"
        f"&timestamp={int(clock.now().timestamp()) - 5}"
    )
    _assert_empty(response, 200)
    assert await _pings(session, user.id) == []

    # And the control: the same request inside the shift is kept.
    inside = int((clock.now() - timedelta(minutes=1)).timestamp())
    response = await client.post(f"{URL}?id=d-offshift&lat=55.75&lon=37.61&timestamp={inside}")
    _assert_empty(response, 200)
    rows = await _pings(session, user.id)
    assert [r.recorded_at for r in rows] == [datetime.fromtimestamp(inside, UTC)]


async def test_a_shift_row_covering_the_protocol_example_time(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    """The OsmAnd example as sent (GET, Unix ms), inside a shift inserted directly."""
    world = await factory.world()
    user = world.installer_b
    device_id = await _register(client, factory, user, "d-77c0e9")
    session.add(
        Shift(
            id=uuid.uuid4(),
            organization_id=user.organization_id,
            user_id=user.id,
            started_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
            ended_at=datetime(2026, 11, 23, 17, 0, tzinfo=UTC),
            source=ShiftSource.MANUAL,
        )
    )
    await session.commit()
    response = await client.get(f"{URL}?{EXAMPLE_OSMAND}")
    _assert_empty(response, 200)
    rows = await _pings(session, user.id)
    assert len(rows) == 1
    row = rows[0]
    assert row.device_id == device_id
    assert row.recorded_at == datetime(2026, 11, 23, 9, 45, 40, 7000, tzinfo=UTC)
    assert (row.lat, row.lon) == pytest.approx((52.5159, 13.3777))
    assert row.accuracy_m is None
    assert row.speed_mps == pytest.approx(11.5 * KNOT_MPS, rel=1e-6)
    assert row.heading_deg == pytest.approx(262.0)
    assert row.altitude_m == pytest.approx(38.0)
    assert row.battery_pct is None


async def test_heartbeat_updates_the_device_and_stores_no_point(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    user, _ = await _worker_on_shift(client, factory, clock, "d-0c5d62")
    before = await _device(session, "d-0c5d62")
    assert before.last_seen_at is None
    assert before.battery_pct is None
    ts = int((clock.now() - timedelta(seconds=20)).timestamp())
    response = await client.post(
        URL, content=f"id=d-0c5d62&timestamp={ts}&batt=42", headers={"Content-Type": FORM}
    )
    _assert_empty(response, 200)
    assert await _pings(session, user.id) == []
    assert await _latest(session, user.id) is None
    device = await _device(session, "d-0c5d62")
    assert device.last_seen_at == clock.now()
    assert device.battery_pct == pytest.approx(42.0)

    # A later heartbeat without a battery keeps the last known level.
    clock.advance(timedelta(minutes=1))
    response = await client.get(URL, params={"id": "d-0c5d62"})
    _assert_empty(response, 200)
    device = await _device(session, "d-0c5d62")
    assert device.last_seen_at == clock.now()
    assert device.battery_pct == pytest.approx(42.0)


async def test_json_body_of_traccar_client_9_is_stored(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    user, device_id = await _worker_on_shift(client, factory, clock, "d-b2193f")
    fix = clock.now() - timedelta(seconds=45, microseconds=882000)
    body = json.loads(EXAMPLE_JSON)
    body["location"]["timestamp"] = fix.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    response = await client.post(
        URL,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    _assert_empty(response, 200)
    rows = await _pings(session, user.id)
    assert len(rows) == 1
    row = rows[0]
    assert row.device_id == device_id
    assert row.recorded_at == fix
    assert (row.lat, row.lon) == pytest.approx((47.6205063, -122.3492774))
    assert row.speed_mps == pytest.approx(13.42, rel=1e-6)  # m/s, not converted again
    assert row.heading_deg == pytest.approx(181.6, rel=1e-6)
    assert row.accuracy_m == pytest.approx(4.7, rel=1e-6)
    assert row.altitude_m == pytest.approx(48.3, rel=1e-6)
    assert row.battery_pct == pytest.approx(90.0)
    assert row.activity == "in_vehicle"
    latest = await _latest(session, user.id)
    assert latest is not None
    assert latest.activity == "in_vehicle"
    assert latest.speed_mps == pytest.approx(13.42)
    device = await _device(session, "d-b2193f")
    assert device.battery_pct == pytest.approx(90.0)


async def test_form_body_of_traccar_client_10_is_stored(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    user, device_id = await _worker_on_shift(client, factory, clock, "d-0c5d62")
    ts = int((clock.now() - timedelta(seconds=15)).timestamp())
    body = EXAMPLE_FORM.replace(b"timestamp=1795443320", f"timestamp={ts}".encode())
    response = await client.post(URL, content=body, headers={"Content-Type": FORM})
    _assert_empty(response, 200)
    rows = await _pings(session, user.id)
    assert len(rows) == 1
    row = rows[0]
    assert row.device_id == device_id
    assert row.recorded_at == datetime.fromtimestamp(ts, UTC)
    assert (row.lat, row.lon) == pytest.approx((-34.5997, -58.3923))
    assert row.speed_mps == pytest.approx(22.74 * KNOT_MPS, rel=1e-6)
    assert row.heading_deg == pytest.approx(287.3, rel=1e-6)
    assert row.battery_pct == pytest.approx(76.0)

    # A newer fix moves the latest position; the older one stays in the history.
    clock.advance(timedelta(minutes=1))
    newer = ts + 60
    response = await client.post(
        URL,
        content=f"id=d-0c5d62&lat=-34.6001&lon=-58.3950&timestamp={newer}".encode(),
        headers={"Content-Type": FORM},
    )
    _assert_empty(response, 200)
    assert len(await _pings(session, user.id)) == 2
    latest = await _latest(session, user.id)
    assert latest is not None
    assert latest.recorded_at == datetime.fromtimestamp(newer, UTC)
    assert (latest.lat, latest.lon) == pytest.approx((-34.6001, -58.3950))


async def test_get_and_an_iso_time_with_an_unescaped_plus(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    user, _ = await _worker_on_shift(client, factory, clock, "d-iso01")
    local = clock.now().astimezone(timezone(timedelta(hours=3))) - timedelta(seconds=30)
    stamp = local.replace(microsecond=0).isoformat()  # e.g. 2026-11-24T12:09:30+03:00
    assert "+03:00" in stamp
    # Written into the URL as is: the `+` arrives as a space.
    response = await client.get(f"{URL}?id=d-iso01&location=55.7887,49.1221&timestamp={stamp}")
    _assert_empty(response, 200)
    rows = await _pings(session, user.id)
    assert len(rows) == 1
    assert rows[0].recorded_at == local.replace(microsecond=0)
    assert (rows[0].lat, rows[0].lon) == pytest.approx((55.7887, 49.1221))


@pytest.mark.parametrize(
    "query",
    [
        "id=d-garbage&lat=abc&lon=24.1",
        "id=d-garbage&lat=NaN&lon=24.1",
        "id=d-garbage&lat=91&lon=24.1",
        "id=d-garbage&lat=56.9&lon=24.1&timestamp=2026-11-24T08:59:00",
        "id=d-garbage&location=1,2,3",
    ],
)
async def test_garbage_gets_400_and_nothing_is_stored(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    clock: FrozenClock,
    query: str,
) -> None:
    user, _ = await _worker_on_shift(client, factory, clock, "d-garbage")
    response = await client.post(f"{URL}?{query}")
    _assert_empty(response, 400)
    assert await _pings(session, user.id) == []
    device = await _device(session, "d-garbage")
    assert device.last_seen_at is None  # refused before anything was touched
    # Bad JSON is refused the same way.
    response = await client.post(
        URL,
        content=b'{"device_id":"d-garbage","location":{"timestamp":"2026-11-24T09:09:00Z",'
        b'"coords":{"latitude":NaN,"longitude":1}}}',
        headers={"Content-Type": "application/json"},
    )
    _assert_empty(response, 400)
    assert await _pings(session, user.id) == []


async def test_a_device_of_an_inactive_user_or_a_disabled_device_gets_400(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    gone, other = world.installer_a, world.installer_b
    await _register(client, factory, gone, "d-gone01")
    await _register(client, factory, other, "d-off001")
    await _start_shift(client, factory, gone)
    await _start_shift(client, factory, other)
    clock.advance(timedelta(minutes=10))
    ts = int((clock.now() - timedelta(minutes=1)).timestamp())

    # Control: both are accepted while active.
    for identifier in ("d-gone01", "d-off001"):
        ok = await client.post(f"{URL}?id={identifier}&lat=55.1&lon=37.1&timestamp={ts}")
        _assert_empty(ok, 200)
    assert len(await _pings(session, gone.id)) == 1
    assert len(await _pings(session, other.id)) == 1

    gone.is_active = False
    await session.commit()
    await session.execute(
        text("UPDATE devices SET is_active = false WHERE identifier = 'd-off001'")
    )
    await session.commit()
    seen_before = (await _device(session, "d-gone01")).last_seen_at

    clock.advance(timedelta(minutes=1))
    later = ts + 60
    for identifier in ("d-gone01", "d-off001"):
        refused = await client.post(f"{URL}?id={identifier}&lat=55.2&lon=37.2&timestamp={later}")
        _assert_empty(refused, 400)
    assert len(await _pings(session, gone.id)) == 1
    assert len(await _pings(session, other.id)) == 1
    assert (await _device(session, "d-gone01")).last_seen_at == seen_before


async def test_credentials_are_neither_needed_nor_used(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    """The device identifier is the credential: someone else's bearer token changes nothing."""
    world = await factory.world()
    user = world.measurer_a
    await _register(client, factory, user, "d-noauth")
    await _start_shift(client, factory, user)
    clock.advance(timedelta(minutes=10))
    ts = int((clock.now() - timedelta(minutes=1)).timestamp())
    response = await client.post(
        f"{URL}?id=d-noauth&lat=55.1&lon=37.1&timestamp={ts}",
        headers=factory.auth(world.admin),
    )
    assert response.status_code == 200
    assert response.content == b""
    rows = await _pings(session, user.id)
    assert [r.user_id for r in rows] == [user.id]
    assert await _pings(session, world.admin.id) == []
    # Without any header (the usual case) it works just the same.
    bare = await client.get(f"{URL}?id=d-noauth&lat=55.2&lon=37.2&timestamp={ts + 30}")
    _assert_empty(bare, 200)
    assert len(await _pings(session, user.id)) == 2


_URL_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)
_URL_VALUES = st.one_of(_URL_TEXT, _NUMBERISH, _TIMES.filter(lambda t: t.isascii()))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    with_id=st.booleans(),
    with_position=st.booleans(),
    query=st.lists(st.tuples(_KEYS, _URL_VALUES), max_size=8),
    body=st.one_of(
        st.binary(max_size=100),
        _json_requests(),
        _json_requests(
            device_ids=st.just("d-fuzz"),
            times=st.one_of(st.just(START.isoformat()), _JSON_TIME),
        ),
    ),
    content_type=st.sampled_from([None, FORM, "application/json", "text/plain"]),
)
async def test_fuzz_endpoint_answers_200_or_400_never_5xx(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    with_id: bool,
    with_position: bool,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
) -> None:
    if not hasattr(factory, "osmand_fuzz_user"):
        world = await factory.world()
        await _register(client, factory, world.measurer_a, "d-fuzz")
        await _start_shift(client, factory, world.measurer_a)
        factory.osmand_fuzz_user = world.measurer_a  # type: ignore[attr-defined]
    params: list[tuple[str, str | int | float | bool | None]] = list(query)
    if with_position:  # no timestamp: the time of receipt, the start of the shift
        params[:0] = [("lat", "55.75"), ("lon", "37.61")]
    if with_id:
        params.insert(0, ("id", "d-fuzz"))
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(URL, params=params, content=body, headers=headers)
    assert response.status_code in (200, 400)
    assert response.content == b""
    # The shared transaction is still usable (no statement failed inside it).
    assert await session.scalar(text("SELECT 1")) == 1


async def test_measures_that_cannot_be_stored_are_unknown_and_the_point_is_kept(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    """Found by this file: altitude 1e300 or speed 1e39 kn do not fit the float4 columns of
    pings, and a 40-character activity does not fit latest_positions; the endpoint answered 422
    with a problem body after a failed statement. Now such measures become unknown."""
    user, _ = await _worker_on_shift(client, factory, clock, "d-huge01")
    ts = int((clock.now() - timedelta(minutes=2)).timestamp())
    response = await client.post(
        f"{URL}?id=d-huge01&lat=55.1&lon=37.1&timestamp={ts}"
        "&altitude=1e300&speed=1e39&accuracy=1e300&bearing=1e300"
    )
    _assert_empty(response, 200)
    body = _json_body(
        device_id="d-huge01",
        timestamp=(clock.now() - timedelta(minutes=1)).isoformat(),
        coords={"latitude": 55.2, "longitude": 37.2, "altitude": -1e200, "speed": 1e300},
        activity={"type": "x" * 40},
    )
    response = await client.post(URL, content=body, headers={"Content-Type": "application/json"})
    _assert_empty(response, 200)
    rows = await _pings(session, user.id)
    assert len(rows) == 2
    for row in rows:
        assert (row.altitude_m, row.speed_mps, row.accuracy_m, row.activity) == (
            None,
            None,
            None,
            None,
        )
    assert rows[0].heading_deg is not None
    assert 0 <= rows[0].heading_deg < 360
    latest = await _latest(session, user.id)
    assert latest is not None
    assert (latest.lat, latest.lon) == pytest.approx((55.2, 37.2))
    assert latest.activity is None
