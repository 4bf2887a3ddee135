//! Tenant identity. The tenant is part of every key, query and file path.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A tenant's id: a short string such as `default` or `t-4f2a…`. Cheap to clone.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct TenantId(#[schemars(with = "String")] Arc<str>);

impl TenantId {
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TenantId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

pub(crate) fn default_tenant() -> TenantId {
    TenantId::new("default")
}
