"""Solomon VRPTW instances: reader and the DIMACS distance convention (pure, no I/O beyond
reading the file you name).

A Solomon file has the instance name, a ``VEHICLE`` block (``NUMBER  CAPACITY`` and their
values), then a ``CUSTOMER`` block whose rows are ``CUST NO. XCOORD. YCOORD. DEMAND READY TIME
DUE DATE SERVICE TIME``; row 0 is the depot. The reader is lenient about layout (CRLF, blank
lines, extra spaces): it takes the first two integers after the ``NUMBER``/``CAPACITY`` header
and every later line of seven numbers.

Distances are Euclidean and travel time equals distance. Under the DIMACS convention (used by
CVRPLIB's and PyVRP's distance-only best-known solutions) each arc is truncated to one
decimal; ×10 that is an exact integer, which is what `dimacs_matrix` returns (``scale=10``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

from geo.travel import Matrices
from geo.vrp import Visit, Worker

__all__ = [
    "SolomonCustomer",
    "SolomonInstance",
    "dimacs_matrix",
    "euclidean_distance",
    "field_service_model",
    "read_solomon",
    "route_distance_dimacs",
]

DIMACS_SCALE = 10
"""Integer units per Solomon unit under the DIMACS convention (one decimal)."""


@dataclass(frozen=True, slots=True)
class SolomonCustomer:
    """One row of the customer block; ``number`` is the file's CUST NO. (0 = depot)."""

    number: int
    x: float
    y: float
    demand: int
    ready: int
    due: int
    service: int


@dataclass(frozen=True, slots=True)
class SolomonInstance:
    """A parsed instance: ``customers[0]`` is the depot."""

    name: str
    vehicles: int
    capacity: int
    customers: tuple[SolomonCustomer, ...]

    @property
    def depot(self) -> SolomonCustomer:
        """The depot row (customer number 0)."""
        return self.customers[0]


def _numbers(line: str) -> list[float] | None:
    try:
        return [float(token) for token in line.split()]
    except ValueError:
        return None


def parse_solomon(text: str, name: str | None = None) -> SolomonInstance:
    """Parse the text of a Solomon-format file. Raises `ValueError` naming what is missing."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError("empty Solomon file")
    title = name or lines[0]
    vehicles = capacity = None
    customers: list[SolomonCustomer] = []
    in_vehicle_block = False
    for line in lines[1:]:
        upper = line.upper()
        if "NUMBER" in upper and "CAPACITY" in upper and vehicles is None:
            in_vehicle_block = True
            continue
        values = _numbers(line)
        if values is None:
            continue
        if in_vehicle_block and vehicles is None and len(values) == 2:
            vehicles, capacity = int(values[0]), int(values[1])
            in_vehicle_block = False
            continue
        if len(values) == 7:
            number, x, y, demand, ready, due, service = values
            customers.append(
                SolomonCustomer(
                    number=int(number),
                    x=x,
                    y=y,
                    demand=int(demand),
                    ready=int(ready),
                    due=int(due),
                    service=int(service),
                )
            )
    if vehicles is None or capacity is None:
        raise ValueError(f"{title}: no VEHICLE NUMBER/CAPACITY values")
    if not customers or customers[0].number != 0:
        raise ValueError(f"{title}: the customer block must start with the depot (number 0)")
    numbers = [c.number for c in customers]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{title}: duplicate customer numbers")
    return SolomonInstance(title, vehicles, capacity, tuple(customers))


def read_solomon(path: str | Path) -> SolomonInstance:
    """Read a Solomon-format VRPTW file (any instance, not only the 100-customer sets)."""
    path = Path(path)
    return parse_solomon(path.read_text(encoding="utf-8", errors="replace"))


def dimacs_matrix(instance: SolomonInstance) -> npt.NDArray[np.int64]:
    """Distances ×10 with each arc truncated to one decimal: ``floor(10 * euclid)``.

    Row/column ``i`` is ``instance.customers[i]``. Exact: with integer coordinates
    ``10 * euclid`` is an integer only when the distance itself is an integer, whose square
    root IEEE computes exactly, so flooring never falls on the wrong side.
    """
    xy = np.array([(c.x, c.y) for c in instance.customers], dtype=np.float64)
    diff = xy[:, None, :] - xy[None, :, :]
    euclid = np.sqrt((diff * diff).sum(axis=2))
    tenths: npt.NDArray[np.int64] = np.floor(euclid * DIMACS_SCALE).astype(np.int64)
    return tenths


def euclidean_distance(a: SolomonCustomer, b: SolomonCustomer) -> float:
    """Exact Euclidean distance between two rows."""
    return math.hypot(a.x - b.x, a.y - b.y)


def route_distance_dimacs(instance: SolomonInstance, route: Sequence[int]) -> float:
    """DIMACS distance (one-decimal truncated arcs) of depot → route (customer numbers) →
    depot, in Solomon units."""
    by_number = {c.number: c for c in instance.customers}
    stops = [instance.depot, *(by_number[n] for n in route), instance.depot]
    tenths = sum(math.floor(euclidean_distance(a, b) * DIMACS_SCALE) for a, b in pairwise(stops))
    return tenths / DIMACS_SCALE


def field_service_model(
    instance: SolomonInstance,
) -> tuple[list[Visit], list[Worker], Matrices]:
    """The instance in `geo.vrp` terms, the way the benchmark solves it: one worker per
    vehicle (at most VEHICLE NUMBER of them used) starting and ending at the depot, with the
    depot's window as shift and the vehicle capacity; one visit per customer (id = its CUST NO.)
    with window, service time and demand. Times and distances are DIMACS integers (×10)."""
    scale = DIMACS_SCALE
    d = dimacs_matrix(instance)
    depot = instance.depot
    shift = (depot.ready * scale, depot.due * scale)
    workers = [
        Worker(f"vehicle-{k + 1}", 0, 0, shift, capacity=instance.capacity)
        for k in range(instance.vehicles)
    ]
    visits = [
        Visit(
            str(c.number),
            i,
            service_s=c.service * scale,
            window=(c.ready * scale, c.due * scale),
            demand=c.demand,
        )
        for i, c in enumerate(instance.customers)
        if i
    ]
    return visits, workers, Matrices(d, d.copy())
