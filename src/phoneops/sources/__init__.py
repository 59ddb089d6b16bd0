"""Which lists pay: every uploaded, cleaned or imported list carries a source label; the numbers of each source
(by blind index only) are joined with what they cost and earned (docs/sources.md).

- models.py: source membership (label x blind index, kept or not, since when).
- service.py: labels, recording members, the per-source report (numbers, kept, opted out, HLR spend, SMS,
  clicks, REG, FTD, revenue, cost per FTD, ROI) with a per-day series.
- router.py / views.py: the API, its CSV and the sources page with a chart per source.
"""
