"""One module per table or figure of "Pretrained Transformers As Universal Computation Engines".

Each module defines `TABLE` (fptlab.report.Table) or `FIGURE` (fptlab.report.Figure): the sweep spec
it reads (experiments/<spec>.toml), the cells it needs by axis values, the value of a cell, the
paper's published numbers and the layout. `fptlab report --table N` finds them by key. This folder is
the package `fptlab.analysis` (pyproject maps it; fptlab.report.catalog also loads it from a checkout).
"""
