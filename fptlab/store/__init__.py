"""The results store: one SQL database (SQLite by default, PostgreSQL for several drivers) holding
experiments, trials, per-step curves, final results and artifact locations. See `db.Store`."""

from __future__ import annotations

from fptlab.store.claims import Claim, new_owner_id
from fptlab.store.db import Store
from fptlab.store.errors import DatabaseFileGone, StoreError
from fptlab.store.models import DONE, ENDED, PRUNED, RETRIED, STATUSES
from fptlab.store.sink import StoreSink
from fptlab.store.urls import mask_url

__all__ = ["DONE", "ENDED", "PRUNED", "RETRIED", "STATUSES", "Claim", "DatabaseFileGone", "Store", "StoreError", "StoreSink", "mask_url", "new_owner_id"]
