"""The IAM identities the auth tests sign as (no tests here)."""

ALICE = "arn:aws:iam::123456789012:user/alice"
