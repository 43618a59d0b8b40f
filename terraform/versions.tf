terraform {
  # 1.9: a variable's validation may refer to locals (variables.tf web_image_origins reads local.code).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    # Pinned to one minor line of the 6.x series; `terraform init` writes the exact build into
    # .terraform.lock.hcl, which is committed once it has been generated on a machine with network.
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50.0"
    }
    # Only for google_dataflow_flex_template_job, which is a beta resource.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50.0"
    }
  }

  # State lives in a GCS bucket created once by hand (see README.md "Bootstrap"):
  #   terraform init -backend-config="bucket=<project>-tfstate" -backend-config="prefix=hashtags/<env>"
  backend "gcs" {}
}
