from runlane.store.sql import CancelResult, Conflict, CreatedRun, NotFound, SettleResult, Store

__all__ = ["CancelResult", "Conflict", "CreatedRun", "NotFound", "SettleResult", "Store"]
