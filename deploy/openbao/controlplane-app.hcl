# The control plane's AppRole policy (API, workers, CLI): what `controlplane` needs of OpenBao, and no more.
#   bao policy write controlplane-app deploy/openbao/controlplane-app.hcl
# tests/integration/test_openbao_approle.py logs in with exactly this policy and runs the app's OpenBao paths.

# Platform secrets: JWT keys, Stripe, rotation records (read by the API; written, check-and-set, by rotation).
path "secret/data/platform/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/platform/*" {
  capabilities = ["read"]
}

# Plugin licenses: signed by transit, the key never leaves OpenBao; rotated by the scheduled task.
path "transit/sign/license-signing" {
  capabilities = ["update"]
}
path "transit/keys/license-signing" {
  capabilities = ["read"]
}
path "transit/keys/license-signing/rotate" {
  capabilities = ["update"]
}

# Tenants' personal data: a data key made per tenant (returned with its wrapped form), unwrapped (and values
# from before the data keys decrypted), rewrapped; rotation raises the minimum decryption version.
path "transit/datakey/plaintext/tenant-pii" {
  capabilities = ["update"]
}
path "transit/decrypt/tenant-pii" {
  capabilities = ["update"]
}
path "transit/rewrap/tenant-pii" {
  capabilities = ["update"]
}
path "transit/keys/tenant-pii" {
  capabilities = ["read"]
}
path "transit/keys/tenant-pii/rotate" {
  capabilities = ["update"]
}
path "transit/keys/tenant-pii/config" {
  capabilities = ["update"]
}

# Per-tenant namespaces under `tenants/`: made, set up and deleted by the app; their secrets are read and
# written only with a token made inside each (policy `tenant`, its `kv/` mount alone).
path "sys/namespaces" {
  capabilities = ["list"]
}
path "sys/namespaces/tenants" {
  capabilities = ["create", "read", "update"]
}
path "tenants/sys/namespaces/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "tenants/sys/namespaces" {
  capabilities = ["list"]
}
path "tenants/+/sys/mounts" {
  capabilities = ["read"]
}
path "tenants/+/sys/mounts/kv" {
  capabilities = ["create", "update"]
}
path "tenants/+/sys/policy/tenant" {
  capabilities = ["create", "update"]
}
path "tenants/+/auth/token/create" {
  capabilities = ["update", "sudo"]
}

# The app role's database password (static role of the database engine), where configured.
path "database/static-creds/controlplane-app" {
  capabilities = ["read"]
}
path "database/rotate-role/controlplane-app" {
  capabilities = ["update"]
}

# Its own token: looked up by readiness, renewed.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
