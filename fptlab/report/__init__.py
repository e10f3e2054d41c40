"""Reading results back: summaries and (later) the paper's tables and figures. Never imports torch."""
