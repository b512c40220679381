"""`judge` against the rule written out plainly, for any bands (open sides, overlapping or
inverted yellow and red bands from an odd override) and any value, edges included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rpm.rules.bands import Band, Level, QuantityBands, judge

edges = st.none() | st.integers(min_value=-5, max_value=5).map(float)
bands = st.builds(Band, low=edges, high=edges)
values = st.integers(min_value=-6, max_value=6).map(float) | st.floats(allow_nan=False, allow_infinity=False)


def outside(value: float, band: Band) -> str | None:
    if band.low is not None and value < band.low:
        return "low"
    if band.high is not None and value > band.high:
        return "high"
    return None


@given(yellow=bands, red=bands, value=values)
def test_judge_follows_the_rule_for_any_bands(yellow, red, value):
    judgement = judge(value, QuantityBands(yellow=yellow, red=red))
    if (side := outside(value, red)) is not None:
        expected = (Level.red, side, {side: getattr(red, side)})
    elif (side := outside(value, yellow)) is not None:
        expected = (Level.yellow, side, {side: getattr(yellow, side)})
    else:
        expected = (Level.green, None, None)
    assert (judgement.level, judgement.side, judgement.threshold) == expected


def test_bands_compare_and_hash_by_their_edges_only():
    assert QuantityBands(Band(94), Band(92)) == QuantityBands(Band(94), Band(92))
    assert hash(QuantityBands(Band(94), Band(92))) == hash(QuantityBands(Band(94), Band(92)))
    assert QuantityBands(Band(94), Band(92)) != QuantityBands(Band(94), Band(91))
