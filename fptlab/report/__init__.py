"""Reading results back into the paper's tables and figures (`fptlab report`). Never imports torch.

Analysis modules (the top-level `analysis/` folder, importable as `fptlab.analysis`) declare each
table with the classes exported here; `fptlab.report.engine` builds and `render` / `html` format them.
"""

from fptlab.report.declare import (
    AnyOf,
    Column,
    Figure,
    PaperValue,
    Row,
    Table,
    paper_grid,
    parse_paper_value,
    task_columns,
    variant_rows,
)

__all__ = ["AnyOf", "Column", "Figure", "PaperValue", "Row", "Table", "paper_grid", "parse_paper_value", "task_columns",
           "variant_rows"]
