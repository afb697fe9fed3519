"""Reports over runs: collect ``metrics.json`` + configs, group and aggregate, write Markdown/HTML, plot.

- :mod:`.runs`: find run dirs (and planned-but-never-started multirun jobs), read configs and results.
- :mod:`.aggregate`: group by config keys, mean ± std over seeds/splits, pivots, the table model.
- :mod:`.anchors`: published rows shown beside ours.
- :mod:`.paired`: paired differences between two rows, split by split (mean, wins, paired t).
- :mod:`.plots`: the plot registry (problem packages provide plot functions by dotted path).
- :mod:`.render`: Markdown and self-contained HTML writers; :mod:`.wandb_log`: W&B images and tables.
- :mod:`.table`: table definitions (``experiments/<problem>/<table>.yaml``) and rerunning them.
- :mod:`.cli`: ``recsci report`` and ``recsci table``.

Problem-agnostic: nothing here imports ``recsci.graph``, ``recsci.delayed`` or ``recsci.uncertainty``.
"""

from recsci.core.report.aggregate import Group, Layout, MetricSpec, Pivot, Stat
from recsci.core.report.build import build_report
from recsci.core.report.paired import Comparison, PairedStat
from recsci.core.report.plots import Plot, PlotDataMissing, ReportData, register_plot
from recsci.core.report.runs import RunRecord, collect_runs

__all__ = [
    "Comparison",
    "Group",
    "Layout",
    "MetricSpec",
    "PairedStat",
    "Pivot",
    "Plot",
    "PlotDataMissing",
    "ReportData",
    "RunRecord",
    "Stat",
    "build_report",
    "collect_runs",
    "register_plot",
]
