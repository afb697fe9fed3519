"""Our Taobao pipeline against SOURCE.md's flip rates, under the definition that reproduces them.

SOURCE.md: an observed negative with cart/fav by elapsed time e flips to a buy 8.9% of the time at e = 15 min
(0.98% without), 8.0% vs 0.60% at 1 h, 4.7% vs 0.19% at 1 day; 5-18% of all flips had prior engagement.
Those are rates over *matured* clicks with the 72 h attribution window of ``data=delayed_taobao``: clicks
whose window closed before the data ends, a flip being a buy within 72 h. Over all clicks with no window
(what docs/delayed.md quoted, 7.1% / 0.90% at 15 min) the last three days' clicks, cut off before they could
convert, dilute the short-e rates, and conversions after 72 h inflate the 1-day ones. Under the matured definition the rates without engagement agree to SOURCE.md's
precision and those with engagement to within two flips of the ~200-350 engaged negatives per cell (the
remaining difference could not be traced to any boundary convention: strict or inclusive bounds, window end
at the last event or at midnight all give the same counts here).
"""

from __future__ import annotations

import numpy as np
import pytest

from recsci.delayed.data import ClickLog, flip_rates
from recsci.delayed.taobao import TaobaoUserBehavior
from tests.conftest import data_root

SOURCE_MD = {0.25: (0.089, 0.0098), 1.0: (0.080, 0.0060), 24.0: (0.047, 0.0019)}

needs_data = pytest.mark.skipif(data_root() is None, reason="RECSCI_DATA is not set")


@pytest.mark.data
@needs_data
def test_flip_rates_match_source_md_over_matured_clicks() -> None:
    root = data_root() / "delayed" / "taobao_userbehavior"
    log = TaobaoUserBehavior(str(root), attribution_hours=72.0).load()
    no_window = TaobaoUserBehavior(str(root), attribution_hours=1e6).load()
    for elapsed, (engaged, other) in SOURCE_MD.items():
        rates = flip_rates(log, elapsed, matured_only=True)
        assert rates.other_rate == pytest.approx(other, abs=0.0001), (elapsed, rates)
        assert abs(rates.engaged_flips - engaged * rates.engaged_negatives) <= 2.0, (elapsed, rates)
        assert 0.05 <= round(rates.engaged_share_of_flips, 2) <= 0.18
        # Over all clicks with no attribution window (docs/delayed.md: 7.1% / 0.90% at 15 min) the same
        # ClickLog misses SOURCE.md's rates: the definition, not the pipeline, made the difference.
        diluted = flip_rates(no_window, elapsed, matured_only=False)
        assert abs(diluted.other_rate - other) > 0.00015, (elapsed, diluted)


def test_flip_rates_count_by_hand() -> None:
    inf = np.inf
    log = ClickLog(
        click_ts=np.array([0.0, 0.0, 0.0, 1.0, 50.0]),
        conv_ts=np.array(
            [0.1, 5.0, inf, 3.0, 60.0]
        ),  # converted by e=0.5 / flips / never / flips / too recent
        features=np.zeros((5, 1), dtype=np.int32),
        cardinalities=(1,),
        field_names=("f",),
        engagement_ts=np.array([[inf], [0.2], [inf], [inf], [50.1]]),
        engagement_names=("cart",),
        attribution_hours=24.0,
    )
    rates = flip_rates(log, 0.5)  # the click at 50 h is not matured (50 + 24 > span 50)
    assert (rates.engaged_negatives, rates.engaged_flips, rates.other_negatives, rates.other_flips) == (
        1,
        1,
        2,
        1,
    )
    assert rates.engaged_share_of_flips == 0.5
    everything = flip_rates(log, 0.5, matured_only=False)
    assert (everything.engaged_negatives, everything.engaged_flips) == (2, 2)
