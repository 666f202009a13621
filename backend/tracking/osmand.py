"""Decode one OsmAnd-protocol request (Traccar Client apps, OsmAnd online tracking) into a Report.

Pure: no database, no web framework. The spec is docs/shared protocols note ``osmand.md``.

Two wire forms:

* key/value pairs from the URL query and, unless the request is JSON, a form body
  (``application/x-www-form-urlencoded``, also assumed when there is no Content-Type). The URL
  wins when a key is in both; inside one source the last occurrence of a key wins (as in Traccar),
  except ``cell`` and ``wifi``, which may repeat and are kept joined with ``;``.
* the JSON body of Traccar Client 9.x (any JSON media type). The query is ignored in that form.

Units are converted to those of :class:`~backend.tracking.points.Point`: knots become m/s, a JSON
battery fraction becomes percent; "unknown" markers (negative speed, heading −1, accuracy ≤ 0,
battery −1) become ``None``, and so do measures beyond the ranges of the JSON ping API (the
position is kept: refusing it would block the phone's queue). Policy (future or stale fixes,
duplicates, shifts) is the caller's.

Error messages name a field and a reason and never quote the request: it names a person's phone
and says where they are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from backend.tracking.points import (
    MAX_ACCURACY_M,
    MAX_ACTIVITY_LENGTH,
    MAX_ALTITUDE_M,
    MAX_SPEED_MPS,
    MIN_ALTITUDE_M,
    Point,
)

__all__ = ["OsmandError", "Report", "decode", "is_json_content_type"]

KNOT_MPS: Final = 0.514444
_MS_THRESHOLD: Final = 2**31 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_FORM_FIELDS: Final = 1000

# ASCII only: `\d` and float() also accept other scripts' digits, Java does not.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_PLAIN_TS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
# An ISO offset whose `+` arrived unescaped and was URL-decoded into a space.
_SPACED_OFFSET = re.compile(r"(.*T.*[0-9]) ([0-9]{2}(?::?[0-9]{2})?)")

_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
# Keys that may repeat; every value is kept.
_REPEATED: Final = frozenset({"cell", "wifi"})
# Identifiers that look numeric but must stay text (leading zeros, 15+ digits).
_TEXT_EXTRAS: Final = frozenset({"imei", "driverUniqueId"})
_KNOWN_KV: Final = frozenset(
    {
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
    }
)


class OsmandError(ValueError):
    """The request cannot be decoded: answer 400. The message names the field, never the value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Report(msgspec.Struct, frozen=True):
    """One decoded request. ``point`` is None for a heartbeat (an id but no position)."""

    device_id: str
    point: Point | None
    received_battery_pct: float | None
    charging: bool | None
    alarm: str | None
    hdop: float | None
    valid: bool
    extras: dict[str, str | float | bool]


def is_json_content_type(content_type: str | None) -> bool:
    """True for any JSON media type: ``application/json``, ``text/json``, ``…/vnd.x+json``."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    _, slash, subtype = media.partition("/")
    return bool(slash) and (subtype == "json" or subtype.endswith("+json"))


def decode(
    *,
    query: Mapping[str, str] | list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    received_at: datetime,
) -> Report:
    """Decode a request; raise :class:`OsmandError` (field + reason) when it must be refused."""
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    else:
        received_at = received_at.astimezone(UTC)
    if is_json_content_type(content_type):
        return _decode_json(body, received_at)
    return _decode_kv(query, body, received_at)


# --- shared helpers ------------------------------------------------------------------------------


def _clean_text(value: str) -> str:
    """Text that PostgreSQL can store: no NUL, no lone surrogates."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _device_id(raw: str, field: str) -> str:
    value = raw.strip()
    if not value:
        raise OsmandError(field, "required")
    if len(value) > 256:
        raise OsmandError(field, "too long")
    if not value.isprintable():
        raise OsmandError(field, "contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise OsmandError(field, "not valid text") from None
    return value


def _lat_lon(lat: float, lon: float, lat_field: str, lon_field: str) -> tuple[float, float]:
    if not math.isfinite(lat) or not -90.0 <= lat <= 90.0:
        raise OsmandError(lat_field, "must be a finite number in [-90, 90]")
    if not math.isfinite(lon) or not -180.0 <= lon <= 180.0:
        raise OsmandError(lon_field, "must be a finite number in [-180, 180]")
    return lat, lon


def _heading(value: float | None) -> float | None:
    if value is None or value < 0:
        return None
    return value % 360.0


def _non_negative(value: float | None) -> float | None:
    return None if value is None or value < 0 else value


def _positive(value: float | None) -> float | None:
    return None if value is None or value <= 0 else value


def _percent(value: float | None) -> float | None:
    return None if value is None or not 0.0 <= value <= 100.0 else value


def _within(value: float | None, low: float, high: float) -> float | None:
    """The value if it lies in [low, high] (the ranges a stored Point allows), else unknown."""
    return value if value is not None and low <= value <= high else None


def _from_unix_digits(digits: str, field: str) -> datetime:
    if len(digits) > 20:
        raise OsmandError(field, "out of range")
    number = int(digits)
    try:
        if number < _MS_THRESHOLD:
            return _EPOCH + timedelta(seconds=number)
        return _EPOCH + timedelta(milliseconds=number)
    except OverflowError:
        raise OsmandError(field, "out of range") from None


def _parse_timestamp(raw: str, field: str) -> datetime:
    """Unix s (below 2^31−1) or ms; ISO 8601 with a zone; ``yyyy-MM-dd HH:mm:ss`` as UTC."""
    text = raw.strip()
    if _DIGITS.fullmatch(text):
        return _from_unix_digits(text, field)
    if "T" in text:
        if not text.isascii():
            raise OsmandError(field, "not an ISO 8601 time")
        spaced = _SPACED_OFFSET.fullmatch(text)
        if spaced is not None:  # `+02:00` sent unescaped arrives as ` 02:00`
            text = f"{spaced.group(1)}+{spaced.group(2)}"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise OsmandError(field, "not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise OsmandError(field, "ISO 8601 time without a zone")
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise OsmandError(field, "out of range") from None
    plain = _PLAIN_TS.fullmatch(text)
    if plain is None:
        raise OsmandError(field, "unknown time format")
    try:
        year, month, day, hour, minute, second = (int(part) for part in plain.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise OsmandError(field, "not a valid date and time") from None


# --- key/value form ------------------------------------------------------------------------------


def _number_text(raw: str) -> float | None:
    """A finite decimal number (scientific notation allowed), else None."""
    text = raw.strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _kv_number(values: dict[str, str], key: str) -> float | None:
    raw = values.get(key)
    if raw is None or not raw.strip():
        return None
    value = _number_text(raw)
    if value is None:
        raise OsmandError(key, "not a finite number")
    return value


def _kv_bool(values: dict[str, str], key: str) -> bool | None:
    raw = values.get(key)
    if raw is None:
        return None
    text = raw.strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OsmandError(key, "must be true, false, 1 or 0")


def _extra_value(key: str, raw: str) -> str | float | bool:
    if key not in _TEXT_EXTRAS:
        number = _number_text(raw)
        if number is not None:
            return number
        lowered = raw.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return _clean_text(raw)


def _collect(
    pairs: Mapping[str, str] | list[tuple[str, str]],
    into: dict[str, str],
    repeated: dict[str, list[str]],
) -> None:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    for key, value in items:
        if key in _REPEATED:
            repeated.setdefault(key, []).append(value)
        else:
            into[key] = value


def _decode_kv(
    query: Mapping[str, str] | list[tuple[str, str]], body: bytes, received_at: datetime
) -> Report:
    body_values: dict[str, str] = {}
    body_repeated: dict[str, list[str]] = {}
    if body:
        try:
            body_pairs = parse_qsl(
                body.decode("utf-8", "replace"),
                keep_blank_values=True,
                max_num_fields=_MAX_FORM_FIELDS,
            )
        except ValueError:
            raise OsmandError("body", "too many fields") from None
        _collect(body_pairs, body_values, body_repeated)
    values: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    _collect(query, values, repeated)
    values = {**body_values, **values}  # the URL wins
    repeated = {**body_repeated, **repeated}

    raw_id = values.get("id")
    if raw_id is None or not raw_id.strip():
        raw_id = values.get("deviceid")
    if raw_id is None:
        raise OsmandError("id", "required")
    device_id = _device_id(raw_id, "id")

    raw_ts = values.get("timestamp")
    recorded_at = (
        received_at
        if raw_ts is None or not raw_ts.strip()
        else _parse_timestamp(raw_ts, "timestamp")
    )

    lat = _kv_number(values, "lat")
    lon = _kv_number(values, "lon")
    location = values.get("location")
    if (lat is None or lon is None) and location is not None and location.strip():
        parts = location.split(",")
        if len(parts) != 2:
            raise OsmandError("location", "must be exactly two numbers: lat,lon")
        lat, lon = _number_text(parts[0]), _number_text(parts[1])
        if lat is None or lon is None:
            raise OsmandError("location", "must be exactly two numbers: lat,lon")
        lat, lon = _lat_lon(lat, lon, "location", "location")
    if (lat is None) != (lon is None):
        raise OsmandError("lon" if lon is None else "lat", "required with the other coordinate")

    speed_kn = _kv_number(values, "speed")
    heading = _kv_number(values, "bearing")
    if heading is None:
        heading = _kv_number(values, "heading")
    altitude = _kv_number(values, "altitude")
    accuracy = _positive(_kv_number(values, "accuracy"))
    hdop = _non_negative(_kv_number(values, "hdop"))
    battery = _percent(_kv_number(values, "batt"))
    charging = _kv_bool(values, "charge")
    valid = _kv_bool(values, "valid")
    mocked = _kv_bool(values, "mock")
    raw_alarm = values.get("alarm")
    alarm = _clean_text(raw_alarm.strip()) if raw_alarm is not None else None

    extras: dict[str, str | float | bool] = {}
    for key, raw in values.items():
        if key not in _KNOWN_KV:
            extras[_clean_text(key)] = _extra_value(key, raw)
    for key, many in repeated.items():
        extras[key] = _clean_text(";".join(many))

    point: Point | None = None
    if lat is not None and lon is not None:
        lat, lon = _lat_lon(lat, lon, "lat", "lon")
        speed_mps = None if speed_kn is None or speed_kn < 0 else speed_kn * KNOT_MPS
        point = Point(
            recorded_at=recorded_at,
            lat=lat,
            lon=lon,
            accuracy_m=_within(accuracy, 0.0, MAX_ACCURACY_M),
            speed_mps=_within(speed_mps, 0.0, MAX_SPEED_MPS),
            heading_deg=_heading(heading),
            altitude_m=_within(altitude, MIN_ALTITUDE_M, MAX_ALTITUDE_M),
            battery_pct=battery,
            mocked=bool(mocked),
        )
    return Report(
        device_id=device_id,
        point=point,
        received_battery_pct=battery,
        charging=charging,
        alarm=alarm or None,
        hdop=hdop,
        valid=True if valid is None else valid,
        extras=extras,
    )


# --- JSON form (Traccar Client 9.x) --------------------------------------------------------------


def _json_number(obj: Mapping[str, Any], key: str, path: str) -> float | None:
    """A JSON number or null/missing; strings, booleans, NaN and overflow are refused."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OsmandError(f"{path}.{key}", "must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise OsmandError(f"{path}.{key}", "out of range") from None
    if not math.isfinite(number):
        raise OsmandError(f"{path}.{key}", "must be finite")
    return number


def _json_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise OsmandError(f"{path}.{key}", "must be true or false")


def _json_object(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise OsmandError(f"{path}.{key}", "must be an object")


def _json_extra(value: Any) -> str | float | bool | None:
    """A free value as an extra: bool, finite number, text; other shapes as compact JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return str(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        return _clean_text(value)
    return _clean_text(msgspec.json.encode(value).decode("utf-8"))


def _lenient_number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _decode_json(body: bytes, received_at: datetime) -> Report:
    try:
        root = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise OsmandError("body", "not valid JSON") from None
    if not isinstance(root, dict):
        raise OsmandError("body", "must be a JSON object")

    raw_id = root.get("device_id")
    if raw_id is None:
        raise OsmandError("device_id", "required")
    if not isinstance(raw_id, str):
        raise OsmandError("device_id", "must be text")
    device_id = _device_id(raw_id, "device_id")

    location = root.get("location")
    if location is None:
        raise OsmandError("location", "required")
    if not isinstance(location, dict):
        raise OsmandError("location", "must be an object")

    raw_ts = location.get("timestamp")
    if raw_ts is None:
        raise OsmandError("location.timestamp", "required")
    if isinstance(raw_ts, str):
        recorded_at = _parse_timestamp(raw_ts, "location.timestamp")
    elif isinstance(raw_ts, int) and not isinstance(raw_ts, bool) and raw_ts >= 0:
        recorded_at = _from_unix_digits(str(raw_ts), "location.timestamp")
    else:
        raise OsmandError("location.timestamp", "must be an ISO 8601 time")

    coords = _json_object(location, "coords", "location")
    if coords is None:
        raise OsmandError("location.coords", "required")
    lat = _json_number(coords, "latitude", "location.coords")
    lon = _json_number(coords, "longitude", "location.coords")
    if lat is None:
        raise OsmandError("location.coords.latitude", "required")
    if lon is None:
        raise OsmandError("location.coords.longitude", "required")
    lat, lon = _lat_lon(lat, lon, "location.coords.latitude", "location.coords.longitude")
    accuracy = _positive(_json_number(coords, "accuracy", "location.coords"))
    speed = _non_negative(_json_number(coords, "speed", "location.coords"))
    heading = _heading(_json_number(coords, "heading", "location.coords"))
    altitude = _json_number(coords, "altitude", "location.coords")

    battery_obj = _json_object(location, "battery", "location")
    battery: float | None = None
    charging: bool | None = None
    if battery_obj is not None:
        level = _json_number(battery_obj, "level", "location.battery")
        battery = None if level is None or not 0.0 <= level <= 1.0 else level * 100.0
        charging = _json_bool(battery_obj, "is_charging", "location.battery")
    mocked = _json_bool(location, "mock", "location")

    activity: str | None = None
    activity_obj = location.get("activity")
    if isinstance(activity_obj, dict):
        kind = activity_obj.get("type")
        if isinstance(kind, str) and 0 < len(kind.strip()) <= MAX_ACTIVITY_LENGTH:
            activity = _clean_text(kind.strip())

    extras: dict[str, str | float | bool] = {}
    free = location.get("extras")
    if isinstance(free, dict):
        for key, value in free.items():
            extra = _json_extra(value)
            if extra is not None:
                extras[_clean_text(key)] = extra

    alarm: str | None = None
    for candidate in (location.get("alarm"), extras.pop("alarm", None)):
        if isinstance(candidate, str) and candidate.strip():
            alarm = _clean_text(candidate.strip())
            break

    is_moving = location.get("is_moving")
    if isinstance(is_moving, bool):
        extras["is_moving"] = is_moving
    event = location.get("event")
    if isinstance(event, str) and event:
        extras["event"] = _clean_text(event)
    uuid = location.get("uuid")
    if isinstance(uuid, str) and uuid:
        extras["uuid"] = _clean_text(uuid)
    for key in ("odometer", "age"):
        number = _lenient_number(location, key)
        if number is not None:
            extras[key] = number
    for key in ("speed_accuracy", "heading_accuracy", "altitude_accuracy"):
        number = _lenient_number(coords, key)
        if number is not None and number >= 0:
            extras[key] = number
    for key in ("ellipsoidal_altitude", "floor"):
        number = _lenient_number(coords, key)
        if number is not None:
            extras[key] = number

    point = Point(
        recorded_at=recorded_at,
        lat=lat,
        lon=lon,
        accuracy_m=_within(accuracy, 0.0, MAX_ACCURACY_M),
        speed_mps=_within(speed, 0.0, MAX_SPEED_MPS),
        heading_deg=heading,
        altitude_m=_within(altitude, MIN_ALTITUDE_M, MAX_ALTITUDE_M),
        battery_pct=battery,
        mocked=bool(mocked),
        activity=activity,
    )
    return Report(
        device_id=device_id,
        point=point,
        received_battery_pct=battery,
        charging=charging,
        alarm=alarm,
        hdop=None,
        valid=True,
        extras=extras,
    )
