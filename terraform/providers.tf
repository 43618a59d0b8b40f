provider "google" {
  project = var.project
  region  = var.region

  default_labels = local.labels
}

provider "google-beta" {
  project = var.project
  region  = var.region

  default_labels = local.labels
}

data "google_project" "this" {
  project_id = var.project
}
