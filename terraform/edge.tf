# The edge: a global external Application Load Balancer (EXTERNAL_MANAGED) with Cloud CDN in front
# of the Cloud Run service, so a hot hashtag page is served from Google's caches, not from Python.
#
#   https://<web_domain>  -> global address -> forwarding rule :443 -> target HTTPS proxy (managed
#   certificate, TLS >= 1.2) -> URL map -> backend service (Cloud CDN) -> serverless NEG -> Cloud Run
#   http://<web_domain>   -> forwarding rule :80 -> URL map that only redirects to https (301)
#
# Cache policy: USE_ORIGIN_HEADERS, i.e. the page's own Cache-Control decides
# (serving/responses.py: "public, max-age=<browser_max_age>, stale-while-revalidate=<...>", from
# hashtags/settings.py; 404s "public, max-age=<NOT_FOUND_MAX_AGE>"; 503s "no-store" and therefore
# never cached). What share of a hot tag's traffic still reaches the origin: docs/OPERATIONS.md
# "Edge cache". Verified in Cloud CDN's documentation (the `search` tool):
# - USE_ORIGIN_HEADERS caches only responses with valid caching headers; default_ttl, max_ttl and
#   client_ttl must be omitted in that mode (provider docs for cdn_policy).
# - stale-while-revalidate in the response is honoured: Cloud CDN serves the expired copy for that
#   many seconds while it revalidates asynchronously; serve_while_stale applies "if not otherwise
#   specified in the response" ("Serve stale content"; max 604,800 s).
# - negative caching: in USE_ORIGIN_HEADERS mode the per-status TTLs apply only to responses that
#   have no Cache-Control/Expires of their own ("Using negative caching"), so the page's own
#   max-age=10 governs its 404s and the policy below is the same 10 s for a 404 without headers.
# - cache key: include_query_string = true with query_string_whitelist keeps only the listed
#   parameters in the key, "all other parameters will be excluded" (provider docs for
#   cache_key_policy); include_query_string = false would also drop the ones the app reads.
# - Serverless NEG backends take no health check, port or timeout (the platform handles them).

locals {
  # hashtags/settings.py Settings.stale_while_revalidate (the origin sends it on every page; used
  # here only as the fallback for responses that do not say). Checked by the test.
  edge_serve_while_stale_seconds = 300
  # serving/views.py NOT_FOUND_MAX_AGE: how long an unknown tag's 404 is cached. Checked by the test.
  edge_not_found_ttl_seconds = 10
  # The query parameters the app reads: `v`, the static assets' content version
  # (serving/templates/base.html: /static/site.css?v=<hash>), and `limit`/`offset`, the Mastodon
  # trends list's pagination (GET /api/v1/trends/tags, issue 19). Checked by the test.
  edge_cache_key_query_parameters = ["limit", "offset", "v"]

  # The security headers serving/app.py security_headers() puts on every response the app makes,
  # from the file the code writes (local.code, locals.tf), for the same var.web_image_origins that
  # cloud_run.tf passes to the app as HASHTAGS_IMAGE_ORIGINS, so the URL map below can put them on
  # every response the edge returns, including the ones the app never sees. The app's img-src is
  # 'self' and the origins joined by spaces (hashtag_ops.terraform_values checks it), or, with
  # none, 'self' https:.
  edge_security_headers = length(var.web_image_origins) == 0 ? local.code.edge.security_headers : {
    for name, value in local.code.edge.security_headers_with_image_origins :
    name => replace(value, local.code.edge.image_origins_placeholder, join(" ", var.web_image_origins))
  }

  # HSTS exists only here: the container speaks plain HTTP and a browser ignores HSTS received over
  # it (RFC 6797 8.1). One year (31536000 s) is the customary full value; includeSubDomains covers
  # the names under var.web_domain (dev.<prod domain> in environments/*.tfvars), all served by
  # an edge like this one, HTTPS only. No preload: a preload-list entry covers the whole
  # registrable domain (not ours alone) and takes months to undo.
  edge_strict_transport_security = "max-age=31536000; includeSubDomains"
}

resource "google_compute_global_address" "web" {
  name        = "hashtags-web"
  description = "Public IPv4 address of the hashtag pages (DNS A record of var.web_domain)."

  depends_on = [google_project_service.enabled]
}

resource "google_compute_region_network_endpoint_group" "web" {
  name                  = "hashtags-web"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = google_cloud_run_v2_service.web.name
  }
}

resource "google_compute_backend_service" "web" {
  name                  = "hashtags-web"
  description           = "Cloud Run hashtags-web behind Cloud CDN."
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  enable_cdn            = true

  backend {
    group = google_compute_region_network_endpoint_group.web.id
  }

  cdn_policy {
    cache_mode        = "USE_ORIGIN_HEADERS"
    serve_while_stale = local.edge_serve_while_stale_seconds
    # One origin fetch per cache node for concurrent misses of the same page (a tag going viral).
    request_coalescing = true

    negative_caching = true
    negative_caching_policy {
      code = 404
      ttl  = local.edge_not_found_ttl_seconds
    }

    # Only the query parameters the app reads are in the key (the rest, in any order, share one
    # copy), so `/tags/love?x=<random>` is a hit like `/tags/love`, not a way past the cache.
    cache_key_policy {
      include_host           = true
      include_protocol       = true
      include_query_string   = true
      query_string_whitelist = local.edge_cache_key_query_parameters
    }
  }

  # The cache state of every edge response, for `curl -sI` (docs/OPERATIONS.md "Edge cache"); the
  # app's own X-Cache header is its in-process cache, a different layer.
  custom_response_headers = ["X-Edge-Cache: {cdn_cache_status}"]

  log_config {
    enable      = true
    sample_rate = var.edge_log_sample_rate
  }
}

# The security headers on every response the edge returns for the site: the app's own (replaced by
# the identical value, replace = true, so none is doubled), and those the app never makes: the HTTP
# server's bare 400/414/431 and Cloud Run's own errors (e.g. 429/500/503 with no instance free).
# Top-level header_action, not a path matcher's: it applies to the default route, i.e. every path.
# What Google documents about where it applies, and what is not verified: docs/OPERATIONS.md
# "Security headers at the edge".
resource "google_compute_url_map" "web" {
  name            = "hashtags-web"
  description     = "Every path of the hashtag site goes to the Cloud Run backend (CDN enabled)."
  default_service = google_compute_backend_service.web.id

  header_action {
    dynamic "response_headers_to_add" {
      for_each = merge(local.edge_security_headers, { "Strict-Transport-Security" = local.edge_strict_transport_security })
      content {
        header_name  = response_headers_to_add.key
        header_value = response_headers_to_add.value
        replace      = true
      }
    }
  }
}

# The name carries a hash of the domain: a new domain creates a new certificate before the old one
# is detached (create_before_destroy), and Google provisions it once DNS points at the address.
resource "google_compute_managed_ssl_certificate" "web" {
  name = "hashtags-web-${substr(sha1(var.web_domain), 0, 8)}"

  managed {
    domains = [var.web_domain]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_ssl_policy" "web" {
  name            = "hashtags-web"
  description     = "TLS 1.2 or newer, MODERN cipher suites."
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "web" {
  name             = "hashtags-web"
  url_map          = google_compute_url_map.web.id
  ssl_certificates = [google_compute_managed_ssl_certificate.web.id]
  ssl_policy       = google_compute_ssl_policy.web.id
}

resource "google_compute_global_forwarding_rule" "https" {
  name                  = "hashtags-web-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "443"
  ip_address            = google_compute_global_address.web.id
  target                = google_compute_target_https_proxy.web.id
}

# --- http:// -> https:// ------------------------------------------------------------------------------

resource "google_compute_url_map" "http_redirect" {
  name        = "hashtags-web-http-redirect"
  description = "Redirects every http:// request to https:// (301)."

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "http_redirect" {
  name    = "hashtags-web-http-redirect"
  url_map = google_compute_url_map.http_redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  name                  = "hashtags-web-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "80"
  ip_address            = google_compute_global_address.web.id
  target                = google_compute_target_http_proxy.http_redirect.id
}
