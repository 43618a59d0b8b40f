"""The Bigtable adapter shared by the jobs and the web service (the only place that talks to Bigtable)."""
from hashtag_store.bigtable import BigtableStore, SharedFailure, StoreUnavailable, create_table, gc_rule_for

__all__ = ["BigtableStore", "SharedFailure", "StoreUnavailable", "create_table", "gc_rule_for"]
