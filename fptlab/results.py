"""Results as pandas DataFrames, for notebooks and the report engine.

    from fptlab.results import trials_frame, curves_frame
    from fptlab.store import Store
    trials = trials_frame(Store("sqlite:///fptlab.db"), experiment="smoke")   # one row per trial
    curves = curves_frame(Store(), keys=["test_accuracy"])                    # long form

`trials_frame` flattens each trial's config into columns (`lr`, `bit_xor.n_bits`, ...) next to its
status and final results; `curves_frame` has columns config_hash, key, step, value (NaN/inf kept).
"""

from fptlab.store.results import curves_frame, trials_frame

__all__ = ["curves_frame", "trials_frame"]
