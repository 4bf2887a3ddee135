//! Controls of the learned web profiles (`/v1/web-profiles`, and "false positive" feedback
//! on a `web_anomaly` finding). Every partition learns profiles from its own requests, so a
//! read merges the partitions' copies (counts add, sets unite) and a change goes to every
//! partition, in order with its events.
//!
//! A change lives in the partitions' memory until an engine checkpoint holds it, so each one
//! is also written to a journal (`<data-dir>/web_profiles.journal`, replaced whole and
//! fsynced) with the log offset the committer had dispatched once every partition applied
//! it. A checkpoint at offset `C > offset` was requested after that moment, behind the
//! change in every partition's queue, so it holds the change; at start the changes at or
//! past the restored checkpoint are applied again as the log tail is replayed, once the
//! events before their offset are dispatched (events that raced the change in its first run
//! may now fall on the other side of it). Entries a written checkpoint holds are pruned at
//! the next change.

use antibody_core::TenantId;
use antibody_detect::webprof::{Method, Mode, TemplateId};
use antibody_detect::{Partition, TenantProfiles};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The export document's `format`.
pub const FORMAT: &str = "antibody-web-profiles";
/// The export document's `version`.
pub const VERSION: u32 = 1;

/// What changes a tenant's profiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum WebChange {
    /// Matching templates learn afresh (see `TenantProfiles::reset`).
    Reset {
        host: Option<String>,
        method: Option<Method>,
        template: Option<String>,
    },
    /// The hosts of the document replace the tenant's own.
    Import { profiles: TenantProfiles },
    /// A `web_anomaly` finding was a false positive: its request is learned.
    LearnFinding { evidence: Map<String, Value> },
    /// The tenant's own mode (over `[engine.web_profiles]`): in order with its events, so
    /// a restart's replay of the log tail switches at the same request.
    Mode { mode: Mode },
}

/// A request to one partition.
#[derive(Clone, Debug)]
pub enum WebCmd {
    Read,
    /// The tenant's mode in force.
    ReadMode,
    Change(Arc<WebChange>),
}

/// One partition's answer.
#[derive(Debug)]
pub enum WebReply {
    Profiles(Option<TenantProfiles>),
    Reset(Vec<TemplateId>),
    Mode(Mode),
    Done,
}

/// Runs `cmd` on one partition (called by its worker).
pub fn apply(p: &mut Partition, tenant: &TenantId, cmd: &WebCmd) -> WebReply {
    match cmd {
        WebCmd::Read => WebReply::Profiles(p.web_profiles(tenant)),
        WebCmd::ReadMode => WebReply::Mode(p.web_mode(tenant)),
        WebCmd::Change(change) => match &**change {
            WebChange::Reset {
                host,
                method,
                template,
            } => WebReply::Reset(p.reset_web_profiles(
                tenant,
                host.as_deref(),
                *method,
                template.as_deref(),
            )),
            WebChange::Import { profiles } => {
                p.import_web_profiles(tenant, profiles);
                WebReply::Done
            }
            WebChange::LearnFinding { evidence } => {
                p.learn_web_finding(tenant, evidence);
                WebReply::Done
            }
            WebChange::Mode { mode } => {
                p.set_web_mode(tenant, *mode);
                WebReply::Done
            }
        },
    }
}

/// Every partition's profiles of a tenant as one.
pub fn merge(replies: Vec<WebReply>) -> TenantProfiles {
    let mut all = TenantProfiles::default();
    for r in replies {
        if let WebReply::Profiles(Some(p)) = r {
            all.merge(&p);
        }
    }
    all
}

/// The mode the partitions report (every partition gets every change, so they agree).
pub fn mode(replies: &[WebReply]) -> Option<Mode> {
    replies.iter().find_map(|r| match r {
        WebReply::Mode(m) => Some(*m),
        _ => None,
    })
}

/// The distinct templates the partitions reset.
pub fn reset_templates(replies: Vec<WebReply>) -> BTreeSet<TemplateId> {
    replies
        .into_iter()
        .flat_map(|r| match r {
            WebReply::Reset(ids) => ids,
            _ => Vec::new(),
        })
        .collect()
}

/// The export (and import) document.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[schemars(extend("const" = FORMAT))]
    pub format: String,
    #[schemars(extend("const" = VERSION))]
    pub version: u32,
    /// The engine's learned state, as exported: import it unchanged.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub profiles: TenantProfiles,
}

impl Document {
    pub fn new(profiles: TenantProfiles) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            profiles,
        }
    }

    /// The document's profiles, when it is one this build reads.
    pub fn into_profiles(self) -> Result<TenantProfiles, String> {
        if self.format != FORMAT {
            return Err(format!("`format` must be `{FORMAT}`"));
        }
        if self.version != VERSION {
            return Err(format!(
                "`version` {} is not one this build reads ({VERSION})",
                self.version
            ));
        }
        Ok(self.profiles)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    offset: u64,
    tenant: TenantId,
    change: WebChange,
}

/// Changes not yet held by a written engine checkpoint (see the module doc).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    entries: Mutex<Vec<Entry>>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("web profile journal {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("web profile journal {path} is unreadable: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
}

impl Journal {
    /// Reads the journal at `path` (none yet: empty). An unreadable one is an error: starting
    /// without it would silently undo acknowledged changes.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let name = path.display().to_string();
        let entries = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| JournalError::Corrupt {
                    path: name.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(JournalError::Io { path: name, source }),
        };
        Ok(Self {
            path: path.to_owned(),
            entries: Mutex::new(entries),
        })
    }

    /// The changes a checkpoint at `from` does not hold, in the order they were made, with
    /// the offset each was made at.
    pub fn pending(&self, from: u64) -> Vec<(u64, TenantId, WebChange)> {
        self.lock()
            .iter()
            .filter(|e| e.offset >= from)
            .map(|e| (e.offset, e.tenant.clone(), e.change.clone()))
            .collect()
    }

    /// Appends a change applied when `offset` events had been dispatched, dropping those the
    /// written checkpoint at `checkpoint` holds; durable when it returns.
    pub fn record(
        &self,
        offset: u64,
        tenant: &TenantId,
        change: &WebChange,
        checkpoint: u64,
    ) -> Result<(), JournalError> {
        let mut entries = self.lock();
        entries.retain(|e| e.offset >= checkpoint);
        entries.push(Entry {
            offset,
            tenant: tenant.clone(),
            change: change.clone(),
        });
        let io = |source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec(&*entries).map_err(|e| io(io::Error::other(e)))?;
        crate::durable_file::replace(&self.path, &[&bytes]).map_err(io)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A panic while holding the lock left the list whole (pushes and retains only).
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset(host: &str) -> WebChange {
        WebChange::Reset {
            host: Some(host.into()),
            method: Some(Method::Post),
            template: None,
        }
    }

    #[test]
    fn the_journal_keeps_what_no_checkpoint_holds_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web_profiles.journal");
        let t = TenantId::new("t");
        let j = Journal::open(&path).unwrap();
        assert!(j.pending(0).is_empty());
        j.record(10, &t, &reset("a"), 0).unwrap();
        j.record(20, &t, &reset("b"), 0).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.pending(15), vec![(20, t.clone(), reset("b"))]);
        assert_eq!(j.pending(10).len(), 2);
        // A written checkpoint at 15 holds the first: the next record prunes it.
        j.record(30, &t, &reset("c"), 15).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.pending(0).len(), 2);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn documents_name_their_format_and_version() {
        let doc = Document::new(TenantProfiles::default());
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["format"], FORMAT);
        let back: Document = serde_json::from_value(json.clone()).unwrap();
        assert!(back.into_profiles().is_ok());
        let mut other = json.clone();
        other["version"] = 2.into();
        let doc: Document = serde_json::from_value(other).unwrap();
        assert!(doc.into_profiles().unwrap_err().contains("version"));
        let mut other = json;
        other["format"] = "x".into();
        let doc: Document = serde_json::from_value(other).unwrap();
        assert!(doc.into_profiles().is_err());
    }
}
