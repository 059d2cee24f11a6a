"""Exact scorer for ahc039 (pure: input and output text in, the contest's integer score out).

The output is one or more polygons, each `m` then m lines `x y`; only the last one is scored,
and every polygon must at least parse (4 <= m <= 1000, integers). The scored polygon must have
integer vertices in [0, 10^5]^2, all distinct, consecutive ones (cyclically) sharing x or y,
a perimeter of at most 4 * 10^5, and no self-intersection: non-adjacent edges share no point
and adjacent edges share only their common vertex (collinear vertices are fine; a reversal
is not). Points on the boundary count as inside. Score: max(0, a - b + 1) for a mackerels and
b sardines inside. A broken rule raises ValueError naming it.

Inside test: all vertices are integers, so the closed polygon is a union of unit lattice squares
and a lattice point is inside (or on the boundary) exactly when one of the four unit squares
around it is. Square centres are half-integers and never lie on an edge, so their parity of
crossings is unambiguous; the parity is constant on each cell of the grid spanned by the
vertices' distinct coordinates, computed once for the grid (O(m^2)) and looked up for the
4 * 2N centres through running counts over the coordinate range.
"""

from __future__ import annotations

import re

import numpy as np

MAX_VERTICES = 1000
MIN_VERTICES = 4
MAX_PERIMETER = 400_000
COORD_MAX = 100_000
_INT = re.compile(r"-?[0-9]{1,18}")


def parse_input(input_text: str) -> tuple[np.ndarray, np.ndarray]:
    """(mackerels_N2, sardines_N2) from a case text."""
    values = np.array(input_text.split(), dtype=np.int64)
    n = int(values[0])
    points = values[1:1 + 4 * n].reshape(2 * n, 2)
    return points[:n], points[n:]


def parse_polygons(output_text: str) -> list[np.ndarray]:
    """Every polygon printed, each as an (m, 2) int array; ValueError if the text is malformed."""
    tokens = output_text.split()
    for tok in tokens:
        if not _INT.fullmatch(tok):
            raise ValueError(f"output token {tok[:20]!r} is not an integer")
    values = [int(t) for t in tokens]
    polygons, i = [], 0
    while i < len(values):
        m = values[i]
        if not MIN_VERTICES <= m <= MAX_VERTICES:
            raise ValueError(f"vertex count {m} outside {MIN_VERTICES}..{MAX_VERTICES}")
        if i + 1 + 2 * m > len(values):
            raise ValueError(f"polygon {len(polygons)} announces {m} vertices but the output "
                             "ends early")
        polygons.append(np.array(values[i + 1:i + 1 + 2 * m], dtype=np.int64).reshape(m, 2))
        i += 1 + 2 * m
    if not polygons:
        raise ValueError("the output holds no polygon")
    return polygons


def check_polygon(poly_M2: np.ndarray) -> None:
    """ValueError naming the first rule the polygon breaks (see the module docstring)."""
    m = len(poly_M2)
    if not MIN_VERTICES <= m <= MAX_VERTICES:
        raise ValueError(f"vertex count {m} outside {MIN_VERTICES}..{MAX_VERTICES}")
    if poly_M2.min() < 0 or poly_M2.max() > COORD_MAX:
        raise ValueError(f"vertex coordinates must lie in 0..{COORD_MAX}")
    poly_M2 = poly_M2.astype(np.int32)  # halves the memory traffic of the pairwise checks
    if len(np.unique(poly_M2, axis=0)) != m:
        raise ValueError("vertices must be distinct")
    nxt_M2 = np.roll(poly_M2, -1, axis=0)
    d_M2 = nxt_M2 - poly_M2
    if np.any((d_M2[:, 0] != 0) & (d_M2[:, 1] != 0)):
        k = int(np.argmax((d_M2[:, 0] != 0) & (d_M2[:, 1] != 0)))
        raise ValueError(f"edge {k} (vertex {k} to {(k + 1) % m}) is not axis-parallel")
    perimeter = int(np.abs(d_M2).sum())
    if perimeter > MAX_PERIMETER:
        raise ValueError(f"perimeter {perimeter} exceeds {MAX_PERIMETER}")
    _check_simple(poly_M2, nxt_M2)


def _adjacent(i: np.ndarray, j: np.ndarray, m: int) -> np.ndarray:
    gap = np.abs(i - j)
    return (gap == 1) | (gap == m - 1)


def _check_simple(poly_M2: np.ndarray, nxt_M2: np.ndarray) -> None:
    """Parallel edges: sorted by line, then by start, any two that meet imply two neighbours
    in that order that meet, so each edge must end before the next on its line begins (or
    exactly where it begins, if the two are adjacent: a collinear vertex). Perpendicular
    edges: a horizontal and a vertical one meet iff each one's fixed coordinate lies in the
    other's closed range; exactly the adjacent pairs (one per corner) may meet."""
    m = len(poly_M2)
    horizontal = poly_M2[:, 1] == nxt_M2[:, 1]
    lo_M2, hi_M2 = np.minimum(poly_M2, nxt_M2), np.maximum(poly_M2, nxt_M2)
    edge = np.arange(m)
    for mask, fixed, free in ((horizontal, 1, 0), (~horizontal, 0, 1)):
        line, start, end, ids = (poly_M2[mask, fixed], lo_M2[mask, free], hi_M2[mask, free],
                                 edge[mask])
        order = np.lexsort((start, line))
        line, start, end, ids = line[order], start[order], end[order], ids[order]
        same = line[1:] == line[:-1]
        bad = same & ((start[1:] < end[:-1]) |
                      ((start[1:] == end[:-1]) & ~_adjacent(ids[1:], ids[:-1], m)))
        if bad.any():
            k = int(np.argmax(bad))
            _self_intersection(int(ids[k]), int(ids[k + 1]), m)
    h, v = edge[horizontal], edge[~horizontal]
    meet_HV = (poly_M2[v, 0][None] >= lo_M2[h, 0][:, None]) & \
        (poly_M2[v, 0][None] <= hi_M2[h, 0][:, None]) & \
        (poly_M2[h, 1][:, None] >= lo_M2[v, 1][None]) & \
        (poly_M2[h, 1][:, None] <= hi_M2[v, 1][None])
    corners = int(np.count_nonzero(horizontal != np.roll(horizontal, -1)))
    if np.count_nonzero(meet_HV) > corners:
        a, b = np.argwhere(meet_HV & ~_adjacent(h[:, None], v[None], m))[0]
        _self_intersection(int(h[a]), int(v[b]), m)


def _self_intersection(i: int, j: int, m: int) -> None:
    i, j = min(i, j), max(i, j)
    kind = "adjacent edges overlap" if j - i in (1, m - 1) else "non-adjacent edges meet"
    raise ValueError(f"the polygon self-intersects: {kind} (edges {i} and {j})")


def inside_mask(poly_M2: np.ndarray, points_P2: np.ndarray) -> np.ndarray:
    """Whether each lattice point lies inside or on the boundary of a simple orthogonal polygon."""
    nxt_M2 = np.roll(poly_M2, -1, axis=0)
    xs, ys = np.unique(poly_M2[:, 0]), np.unique(poly_M2[:, 1])
    vertical = poly_M2[:, 0] == nxt_M2[:, 0]
    ex = np.searchsorted(xs, poly_M2[vertical, 0])
    ey0 = np.searchsorted(ys, np.minimum(poly_M2[vertical, 1], nxt_M2[vertical, 1]))
    ey1 = np.searchsorted(ys, np.maximum(poly_M2[vertical, 1], nxt_M2[vertical, 1]))
    # Cell (iy, ix) lies between ys[iy-1], ys[iy] and xs[ix-1], xs[ix]. A vertical edge at xs[k]
    # spanning ys[a]..ys[b] is crossed by the rightward ray of any centre in cells iy in
    # (a, b], ix <= k: toggle its y-range by a difference array, then accumulate from the right.
    toggles = np.zeros((len(ys) + 2, len(xs) + 1), dtype=np.uint8)
    np.bitwise_xor.at(toggles, (ey0 + 1, ex), 1)
    np.bitwise_xor.at(toggles, (ey1 + 1, ex), 1)
    crossings = np.bitwise_xor.accumulate(toggles, axis=0)
    parity = np.bitwise_xor.accumulate(crossings[:, ::-1], axis=1)[:, ::-1]
    # The centres at p -/+ 0.5 lie in cells #{xs < p} and #{xs <= p} (likewise in y),
    # read from a running count over the coordinate range.
    x_lo, x_hi = _counts_below(xs, points_P2[:, 0])
    y_lo, y_hi = _counts_below(ys, points_P2[:, 1])
    return (parity[y_lo, x_lo] | parity[y_lo, x_hi] | parity[y_hi, x_lo] |
            parity[y_hi, x_hi]).astype(bool)


def _counts_below(grid: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(#{grid < v}, #{grid <= v}) for each v: sorted distinct grid, values in 0..COORD_MAX."""
    marks = np.zeros(COORD_MAX + 1, dtype=np.int32)
    marks[grid] = 1
    at_most = np.cumsum(marks, dtype=np.int32)[values]
    return at_most - marks[values], at_most


def score_case(input_text: str, output_text: str) -> int:
    """The contest's score of one output on one case; ValueError when the output is WA."""
    mackerels_N2, sardines_N2 = parse_input(input_text)
    polygon_M2 = parse_polygons(output_text)[-1]
    check_polygon(polygon_M2)
    inside = inside_mask(polygon_M2, np.concatenate([mackerels_N2, sardines_N2]))
    a, b = int(inside[:len(mackerels_N2)].sum()), int(inside[len(mackerels_N2):].sum())
    return max(0, a - b + 1)
