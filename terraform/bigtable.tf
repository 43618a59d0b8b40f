# Bigtable: the `hashtags` table, one row per hashtag. Table, app profiles, column families and GC
# rules are read from local.code (hashtags/settings.py, hashtags/layout.py), the same ones
# hashtag_store.bigtable.create_table makes locally.

resource "google_bigtable_instance" "hashtags" {
  name                = local.bigtable_instance_id
  display_name        = "Hashtags (${var.environment})"
  deletion_protection = local.is_prod

  dynamic "cluster" {
    for_each = var.bigtable_clusters
    content {
      cluster_id   = cluster.value.cluster_id
      zone         = cluster.value.zone
      storage_type = "SSD"

      autoscaling_config {
        min_nodes      = cluster.value.min_nodes
        max_nodes      = cluster.value.max_nodes
        cpu_target     = var.bigtable_cpu_target
        storage_target = var.bigtable_storage_target_gib
      }
    }
  }
}

resource "google_bigtable_table" "hashtags" {
  name                = local.code.bigtable.tables.hashtags
  instance_name       = google_bigtable_instance.hashtags.name
  deletion_protection = local.is_prod ? "PROTECTED" : "UNPROTECTED"

  # hashtags/layout.py COLUMN_FAMILIES (local.code); their GC rules: google_bigtable_gc_policy.family.
  dynamic "column_family" {
    for_each = local.code.bigtable.column_families.hashtags
    content {
      family = column_family.key
    }
  }
}

locals {
  # Every family of both tables with its table: {family: {max_versions, max_age_hours, mode, table}}.
  bigtable_gc_policies = merge([
    for table, families in local.code.bigtable.column_families :
    { for family, rule in families : family => merge(rule, { table = table }) }
  ]...)
}

# Each family's GC rule as hashtags/layout.py and hashtags/post_state.py define it (local.code):
#   counts: max 3 versions AND 14 days, an INTERSECTION: a cell is collected only when it is older
#     than 14 days AND beyond the newest 3 versions of its column (hour cells age out after two
#     weeks; the newest bases survive a long recount outage);
#   top, meta: the newest version only; days: 35 days, five weeks after the last night that rewrote
#   them (reads take the newest version of each column); post_state's s: the last two runs' versions.
resource "google_bigtable_gc_policy" "family" {
  for_each = local.bigtable_gc_policies

  instance_name   = google_bigtable_instance.hashtags.name
  table           = each.value.table == "post_state" ? google_bigtable_table.post_state.name : google_bigtable_table.hashtags.name
  column_family   = each.key
  deletion_policy = "ABANDON" # a replicated table's GC policy cannot be deleted (prod)

  mode = each.value.mode
  dynamic "max_age" {
    for_each = each.value.max_age_hours == null ? [] : [each.value.max_age_hours]
    content {
      duration = "${max_age.value}h"
    }
  }
  dynamic "max_version" {
    for_each = each.value.max_versions == null ? [] : [each.value.max_versions]
    content {
      number = max_version.value
    }
  }
}

# The policies were one resource per family before they were read from local.code.
moved {
  from = google_bigtable_gc_policy.counts
  to   = google_bigtable_gc_policy.family["counts"]
}
moved {
  from = google_bigtable_gc_policy.top
  to   = google_bigtable_gc_policy.family["top"]
}
moved {
  from = google_bigtable_gc_policy.meta
  to   = google_bigtable_gc_policy.family["meta"]
}
moved {
  from = google_bigtable_gc_policy.days
  to   = google_bigtable_gc_policy.family["days"]
}
moved {
  from = google_bigtable_gc_policy.post_state
  to   = google_bigtable_gc_policy.family["s"]
}

# The web service reads through `serving` (settings.SERVING_APP_PROFILE, env HASHTAGS_APP_PROFILE).
# Multi-cluster routing: a read goes to the nearest available cluster and fails over when a zone is
# down. The page does not need read-your-writes (the writer is the streaming job, not the reader),
# and a replica lagging by seconds only shows a count a few seconds old, so availability wins over
# single-cluster routing. In dev there is one cluster, so it behaves as single-cluster routing.
resource "google_bigtable_app_profile" "serving" {
  instance       = google_bigtable_instance.hashtags.name
  app_profile_id = local.code.bigtable.app_profiles.serving
  description    = "Cloud Run web service: read-only page lookups, any cluster."

  multi_cluster_routing_use_any = true
  ignore_warnings               = true
}

# Writers (streaming job, recount) use single-cluster routing to the first cluster: every write is a
# SetCell at a fixed (row, column, timestamp) that later firings overwrite, and keeping those writes
# on one cluster keeps "last firing wins" without cross-cluster conflict resolution.
resource "google_bigtable_app_profile" "writer" {
  instance       = google_bigtable_instance.hashtags.name
  app_profile_id = local.code.bigtable.app_profiles.writer
  description    = "Streaming job and nightly recount: single-cluster writes."

  single_cluster_routing {
    cluster_id                 = var.bigtable_clusters[0].cluster_id
    allow_transactional_writes = false
  }
  ignore_warnings = true
}

# The reconciliation's per-post state (settings.POST_STATE_TABLE, hashtags/post_state.py): one row
# per post (the winning event the nightly run applied, at the run's as_of) and the run records.
# Same instance as `hashtags`: the recount job reads and writes both.
resource "google_bigtable_table" "post_state" {
  name                = local.code.bigtable.tables.post_state
  instance_name       = google_bigtable_instance.hashtags.name
  deletion_protection = local.is_prod ? "PROTECTED" : "UNPROTECTED"

  dynamic "column_family" {
    for_each = local.code.bigtable.column_families.post_state
    content {
      family = column_family.key
    }
  }
}
