terraform {
  # 1.6 brought the `terraform test` framework and stable `terraform_data`; stay on 1.x.
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    # Pinned to one minor line: patch releases only. Commit `.terraform.lock.hcl` after the first
    # `terraform init` so every machine resolves the same provider builds.
    google = {
      source  = "hashicorp/google"
      version = "~> 6.14.1"
    }
    # Only for the service-agent identities (google_project_service_identity is beta-only).
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.14.1"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6.3"
    }
  }

  # Remote state: keep state in a versioned GCS bucket that only the deployers can read (the
  # state holds generated secrets such as the database password). Copy backend.tf.example to
  # backend.tf, set the bucket, then `terraform init -migrate-state`. See README.md.
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
