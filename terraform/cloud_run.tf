# The Flask page (docker/web/Dockerfile: granian via python -m serving.server) on Cloud Run.
resource "google_cloud_run_v2_service" "web" {
  name                = "hashtags-web"
  location            = var.region
  ingress             = var.web_ingress # the edge load balancer only (edge.tf); variables.tf says when ALL
  deletion_protection = local.is_prod

  template {
    service_account                  = google_service_account.web.email
    max_instance_request_concurrency = var.web_concurrency
    timeout                          = "10s"

    scaling {
      min_instance_count = var.web_min_instances
      max_instance_count = var.web_max_instances
    }

    containers {
      image = local.web_image

      ports {
        container_port = 8080 # Cloud Run sets PORT=8080; serving/server.py binds to $PORT
      }

      resources {
        limits = {
          cpu    = var.web_cpu
          memory = var.web_memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      # hashtags/settings.py Settings.from_env reads HASHTAGS_<FIELD>.
      env {
        name  = "HASHTAGS_PROJECT"
        value = var.project
      }
      env {
        name  = "HASHTAGS_BIGTABLE_INSTANCE"
        value = google_bigtable_instance.hashtags.name
      }
      env {
        name  = "HASHTAGS_TABLE"
        value = google_bigtable_table.hashtags.name
      }
      env {
        name  = "HASHTAGS_APP_PROFILE"
        value = google_bigtable_app_profile.serving.app_profile_id
      }
      env {
        name  = "HASHTAGS_IMAGE_ORIGINS"
        value = join(",", var.web_image_origins)
      }
      env {
        name  = "HASHTAGS_POST_URL_TEMPLATE"
        value = var.web_post_url_template
      }
      # Canonical links, og:url and the Mastodon entity's url are absolute on the public (edge) URL;
      # granian does not rewrite the scheme/host from X-Forwarded-*, so the app is told it.
      env {
        name  = "HASHTAGS_PUBLIC_URL"
        value = "https://${var.web_domain}"
      }
      env {
        name  = "HASHTAGS_PAGE_CACHE_BYTES"
        value = tostring(var.page_cache_bytes)
      }
      # Only moderator-approved tags trend in production (Mastodon's default); the local stack says true.
      env {
        name  = "HASHTAGS_TRENDS_WITHOUT_REVIEW"
        value = "false"
      }
      # One granian worker per vCPU of the limit (serving/server.py), not per CPU the sandbox reports.
      env {
        name  = "WEB_CONCURRENCY"
        value = var.web_cpu
      }

      # Traffic only once the table answers (GET /readyz reads Bigtable).
      startup_probe {
        http_get {
          path = "/readyz"
        }
        initial_delay_seconds = 0
        period_seconds        = 3
        timeout_seconds       = 2
        failure_threshold     = 20
      }

      # Restart only a stuck process (GET /healthz does no I/O): a Bigtable outage answers 503
      # from /readyz and the pages, it must not restart every instance.
      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 15
        timeout_seconds   = 3
        failure_threshold = 3
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [
    google_project_service.enabled,
    google_bigtable_instance_iam_member.web_reader,
  ]
}

# The hashtag pages are public web pages.
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.web_public ? 1 : 0

  name     = google_cloud_run_v2_service.web.name
  location = google_cloud_run_v2_service.web.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
