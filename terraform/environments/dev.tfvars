# terraform plan -var-file=environments/dev.tfvars -var=image_tag=$(git rev-parse --short HEAD)
project     = "hashtags-dev"
region      = "us-central1"
environment = "dev"

bigtable_clusters = [
  { cluster_id = "hashtags-dev-c1", zone = "us-central1-b", min_nodes = 1, max_nodes = 2 },
]

dataflow_max_workers  = 2
dataflow_machine_type = "n2-standard-2"

web_min_instances = 0
web_max_instances = 3

composer_environment_size = "ENVIRONMENT_SIZE_SMALL"
force_destroy_buckets     = true

# Public host name of the pages (edge.tf): replace with the real one; its DNS A record must point at
# `terraform output edge_ip_address` before the managed certificate can be provisioned.
web_domain = "dev.hashtags.example.com"
