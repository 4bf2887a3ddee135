//! Tenants' own documents over the global packs: playbook files, rule files and the
//! response policy (tenant self-service). Every change is a new version and nothing is
//! overwritten, so any version can be shown, compared or rolled back to (a rollback stores
//! the old text again, as the newest version).

use crate::error::StoreError;
use crate::store::Store;
use antibody_core::{TenantId, TimestampMs};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, Row, ToSql};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a document is.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Playbooks,
    Rules,
    Policy,
}

/// The text's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocFormat {
    Yaml,
    Toml,
    Json,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),+ }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)+ _ => None }
            }
        }
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                Self::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {text:?}", stringify!($t)).into())
                })
            }
        }
    };
}

text_enum!(DocKind { Playbooks => "playbooks", Rules => "rules", Policy => "policy" });
text_enum!(DocFormat { Yaml => "yaml", Toml => "toml", Json => "json" });

/// One stored version, without its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DocVersion {
    pub version: u32,
    pub ts: TimestampMs,
    /// Key id of whoever stored it.
    pub actor: String,
    pub format: DocFormat,
    /// Hex SHA-256 of the text.
    pub sha256: String,
    /// For a rollback, the version whose text it restored.
    pub rollback_of: Option<u32>,
}

/// One stored version with its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Doc {
    pub name: String,
    #[serde(flatten)]
    pub info: DocVersion,
    pub text: String,
}

/// A version to store.
#[derive(Clone, Copy, Debug)]
pub struct NewDoc<'a> {
    pub kind: DocKind,
    pub name: &'a str,
    pub format: DocFormat,
    pub text: &'a str,
    pub actor: &'a str,
    pub ts: TimestampMs,
    pub rollback_of: Option<u32>,
}

const COLUMNS: &str = "name, version, ts, actor, format, sha256, rollback_of, body";

/// Hex SHA-256 of a document's text, as stored with it.
pub fn doc_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Store {
    /// Stores `doc` as the next version of its name and returns that version.
    pub fn put_doc(&self, tenant: &TenantId, doc: &NewDoc<'_>) -> Result<DocVersion, StoreError> {
        let sha256 = doc_sha256(doc.text);
        self.write(|tx| {
            let last: Option<u32> = tx
                .prepare_cached(
                    "SELECT MAX(version) FROM tenant_docs WHERE tenant = ?1 AND kind = ?2 AND name = ?3",
                )?
                .query_row((tenant.as_str(), doc.kind, doc.name), |r| r.get(0))?;
            let version = last.unwrap_or(0) + 1;
            tx.prepare_cached(
                "INSERT INTO tenant_docs (tenant, kind, name, version, ts, actor, format, sha256, rollback_of, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(rusqlite::params![
                tenant.as_str(),
                doc.kind,
                doc.name,
                version,
                doc.ts,
                doc.actor,
                doc.format,
                sha256,
                doc.rollback_of,
                doc.text
            ])?;
            Ok(DocVersion {
                version,
                ts: doc.ts,
                actor: doc.actor.to_owned(),
                format: doc.format,
                sha256,
                rollback_of: doc.rollback_of,
            })
        })
    }

    /// One version of a document (the newest when `version` is `None`).
    pub fn doc(
        &self,
        tenant: &TenantId,
        kind: DocKind,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Doc>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tenant_docs WHERE tenant = ?1 AND kind = ?2 AND name = ?3
                 AND (?4 IS NULL OR version = ?4) ORDER BY version DESC LIMIT 1"
            );
            let doc = conn
                .prepare_cached(&sql)?
                .query_row((tenant.as_str(), kind, name, version), doc_from_row)
                .optional()?;
            Ok(doc)
        })
    }

    /// Every version of a document, oldest first.
    pub fn doc_versions(
        &self,
        tenant: &TenantId,
        kind: DocKind,
        name: &str,
    ) -> Result<Vec<DocVersion>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tenant_docs WHERE tenant = ?1 AND kind = ?2 AND name = ?3
                 ORDER BY version"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map((tenant.as_str(), kind, name), doc_from_row)?;
            rows.map(|d| Ok(d?.info)).collect()
        })
    }

    /// The newest version of each of the tenant's documents of `kind`, in name order.
    pub fn current_docs(&self, tenant: &TenantId, kind: DocKind) -> Result<Vec<Doc>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tenant_docs d WHERE tenant = ?1 AND kind = ?2
                 AND version = (SELECT MAX(version) FROM tenant_docs e
                                WHERE e.tenant = d.tenant AND e.kind = d.kind AND e.name = d.name)
                 ORDER BY name"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map((tenant.as_str(), kind), doc_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Tenants with at least one document of `kind`, in id order.
    pub fn doc_tenants(&self, kind: DocKind) -> Result<Vec<TenantId>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT tenant FROM tenant_docs WHERE kind = ?1 ORDER BY tenant",
            )?;
            let rows = stmt.query_map([kind], |r| Ok(TenantId::new(&r.get::<_, String>(0)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

fn doc_from_row(row: &Row<'_>) -> rusqlite::Result<Doc> {
    Ok(Doc {
        name: row.get(0)?,
        info: DocVersion {
            version: row.get(1)?,
            ts: row.get(2)?,
            actor: row.get(3)?,
            format: row.get(4)?,
            sha256: row.get(5)?,
            rollback_of: row.get(6)?,
        },
        text: row.get(7)?,
    })
}
