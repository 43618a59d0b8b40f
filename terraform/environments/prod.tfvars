# terraform plan -var-file=environments/prod.tfvars -var=image_tag=<released tag>
project     = "hashtags-prod"
region      = "us-central1"
environment = "prod"

# Two zones: replication for availability; `serving` reads from the nearest healthy cluster.
bigtable_clusters = [
  { cluster_id = "hashtags-prod-c1", zone = "us-central1-b", min_nodes = 2, max_nodes = 10 },
  { cluster_id = "hashtags-prod-c2", zone = "us-central1-c", min_nodes = 2, max_nodes = 10 },
]

dataflow_max_workers  = 10
dataflow_machine_type = "n2-standard-4"

web_min_instances = 2
web_max_instances = 50
web_cpu           = "2"
web_memory        = "1Gi"

composer_environment_size = "ENVIRONMENT_SIZE_SMALL" # one nightly DAG (composer.tf)
force_destroy_buckets     = false

# Public host name of the pages (edge.tf): replace with the real one; its DNS A record must point at
# `terraform output edge_ip_address` before the managed certificate can be provisioned.
web_domain = "hashtags.example.com"
