# Bigtable: the `hashtags` table, one row per hashtag. Table, column families and GC rules equal
# hashtags/settings.py (TABLE, SERVING_APP_PROFILE) and hashtags/layout.py (COLUMN_FAMILIES), the
# same ones hashtag_store.bigtable.create_table makes locally.

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

  # hashtags/layout.py COLUMN_FAMILIES; their GC rules are the google_bigtable_gc_policy below.
  column_family {
    family = "counts"
  }
  column_family {
    family = "top"
  }
  column_family {
    family = "meta"
  }
  column_family {
    family = "days"
  }
}

# counts: GcRule(max_versions=3, max_age_days=14), an INTERSECTION: a cell is collected only when
# it is older than 14 days AND beyond the newest 3 versions of its column. Hour cells (counts:h)
# age out after two weeks; the newest bases (counts:base) survive a long recount outage.
resource "google_bigtable_gc_policy" "counts" {
  instance_name   = google_bigtable_instance.hashtags.name
  table           = google_bigtable_table.hashtags.name
  column_family   = "counts"
  deletion_policy = "ABANDON" # a replicated table's GC policy cannot be deleted (prod)

  mode = "INTERSECTION"
  max_age {
    duration = "336h" # 14 days
  }
  max_version {
    number = 3
  }
}

# top: GcRule(max_versions=1): only the newest top-posts list.
resource "google_bigtable_gc_policy" "top" {
  instance_name   = google_bigtable_instance.hashtags.name
  table           = google_bigtable_table.hashtags.name
  column_family   = "top"
  deletion_policy = "ABANDON"

  max_version {
    number = 1
  }
}

# meta: GcRule(max_versions=1): only the newest display spelling.
resource "google_bigtable_gc_policy" "meta" {
  instance_name   = google_bigtable_instance.hashtags.name
  table           = google_bigtable_table.hashtags.name
  column_family   = "meta"
  deletion_policy = "ABANDON"

  max_version {
    number = 1
  }
}

# days: GcRule(max_age_days=35): per-day posts/accounts (days:p.YYYYMMDD, days:a.YYYYMMDD) age out
# five weeks after the last night that rewrote them; reads take the newest version of each column.
resource "google_bigtable_gc_policy" "days" {
  instance_name   = google_bigtable_instance.hashtags.name
  table           = google_bigtable_table.hashtags.name
  column_family   = "days"
  deletion_policy = "ABANDON"

  max_age {
    duration = "840h" # 35 days
  }
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

  column_family {
    family = "s"
  }
}

# s: GcRule(max_versions=2): the version a run writes at its as_of and the one before it, which a
# rerun of the same night reads (reads filter by timestamp; they never rely on GC having run).
resource "google_bigtable_gc_policy" "post_state" {
  instance_name   = google_bigtable_instance.hashtags.name
  table           = google_bigtable_table.post_state.name
  column_family   = "s"
  deletion_policy = "ABANDON"

  max_version {
    number = 2
  }
}
