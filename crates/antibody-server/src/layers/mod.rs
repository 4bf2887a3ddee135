//! Tenant self-service: each tenant's own playbooks, rules and response policy over the
//! global layer (the default packs, `<data-dir>/playbooks` and `<data-dir>/rules`, and the
//! `[respond]` configuration, owned by the bootstrap admin).
//!
//! * A tenant document is named (`tenant/<name>.yml` in error messages); a tenant's own
//!   playbook or rule replaces the global one with the same id, new ids add. Its whole set
//!   (global with its own over it) is compiled here and handed to the engines: rules to
//!   every partition in a [`RuleBook`], playbooks and policy to the responder.
//! * Every change is validated first (every error at once, with `file:line`), stored as a
//!   new version (the store keeps them all), put in force without a restart, and returned
//!   with an [`AuditNote`] for the caller to append to the tenant's audit chain.
//! * At start the tenant layers are rebuilt from the store before the log is replayed.
//!
//! Plain functions over the store and an [`Apply`] sink: no web types.

mod diff;
pub mod policy;

pub use diff::{diff, summary};

use crate::audit::AuditNote;
use crate::pipeline::Pipeline;
use crate::ServerError;
use antibody_core::{TenantId, TimestampMs};
use antibody_detect::RuleBook;
use antibody_respond::{PlaybookSet, PlaybookSource, ResponderConfig, TenantPolicy};
use antibody_rules::{RuleInfo, RuleSet, RuleSource};
use antibody_store::{Doc, DocFormat, DocKind, DocVersion, NewDoc, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Largest document body.
pub const MAX_DOC: usize = 1 << 20;
/// Documents a tenant may keep of each kind.
pub const MAX_DOCS: usize = 64;
/// The one policy document's name.
pub const POLICY: &str = "policy";

/// Where something in force comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The default packs, the data dir and the configuration (the bootstrap admin's).
    Global,
    /// The tenant's own documents.
    Tenant,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The document does not validate; `code` is `invalid_yaml` or `invalid_policy`.
    #[error("{errors}")]
    Invalid { code: &'static str, errors: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

/// A stored change: its version (none for the global layer, which is files) and its note.
#[derive(Debug)]
pub struct Stored {
    pub name: String,
    pub version: Option<DocVersion>,
    pub note: AuditNote,
}

/// Where changes take effect: the detection partitions and the response stage.
pub trait Apply {
    fn rules(&self, book: RuleBook);
    fn playbooks(&self, global: Arc<PlaybookSet>);
    fn tenant_playbooks(&self, tenant: TenantId, set: Option<Arc<PlaybookSet>>);
    fn tenant_policy(&self, tenant: TenantId, policy: Option<Arc<TenantPolicy>>);
}

impl Apply for Pipeline {
    fn rules(&self, book: RuleBook) {
        self.set_rules(book);
    }
    fn playbooks(&self, global: Arc<PlaybookSet>) {
        self.set_playbooks(global);
    }
    fn tenant_playbooks(&self, tenant: TenantId, set: Option<Arc<PlaybookSet>>) {
        self.set_tenant_playbooks(tenant, set);
    }
    fn tenant_policy(&self, tenant: TenantId, policy: Option<Arc<TenantPolicy>>) {
        self.set_tenant_policy(tenant, policy);
    }
}

/// One tenant change to store.
#[derive(Clone, Copy, Debug)]
pub struct Put<'a> {
    pub tenant: &'a TenantId,
    pub actor: &'a str,
    pub kind: DocKind,
    pub name: &'a str,
    pub format: DocFormat,
    pub text: &'a str,
    pub now: TimestampMs,
}

/// A document as `GET` shows it: the tenant's newest version, or the global file.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DocView {
    pub name: String,
    pub layer: Layer,
    /// The tenant version shown, with its format (none for a global file).
    #[serde(flatten)]
    pub version: Option<DocVersion>,
    /// A global file's format (YAML); a tenant version names its own above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<DocFormat>,
    pub text: String,
}

/// The rule and playbook sets in force, global and per tenant.
#[derive(Clone)]
struct Sets {
    rules: RuleBook,
    playbooks: Arc<PlaybookSet>,
    tenant_playbooks: BTreeMap<TenantId, Arc<PlaybookSet>>,
    policies: BTreeMap<TenantId, Arc<TenantPolicy>>,
}

pub struct Catalog {
    data_dir: PathBuf,
    /// The configured policy: the base under every tenant's policy document.
    responder: Arc<ResponderConfig>,
    sets: RwLock<Sets>,
    /// Serialises changes (validate → store → swap → apply), so none is lost to another.
    write: Mutex<()>,
}

impl Catalog {
    /// Loads the global layer (its errors stop the start) and every tenant's layer from the
    /// store. A tenant layer that no longer validates (the global layer changed under it)
    /// is left out, with an error in the log: that tenant runs on the global layer.
    pub fn load(
        data_dir: &Path,
        responder: Arc<ResponderConfig>,
        store: &Store,
    ) -> Result<Catalog, ServerError> {
        let rules = Arc::new(RuleSet::load_dir(&data_dir.join("rules"))?);
        let playbooks = Arc::new(crate::load_playbooks(&data_dir.join("playbooks"))?);
        let cat = Catalog {
            data_dir: data_dir.to_path_buf(),
            responder,
            sets: RwLock::new(Sets {
                rules: RuleBook::new(rules),
                playbooks,
                tenant_playbooks: BTreeMap::new(),
                policies: BTreeMap::new(),
            }),
            write: Mutex::new(()),
        };
        let mut sets = cat.snapshot();
        for kind in [DocKind::Rules, DocKind::Playbooks, DocKind::Policy] {
            for tenant in store.doc_tenants(kind)? {
                let docs = store.current_docs(&tenant, kind)?;
                if let Err(e) = cat.rebuild(&mut sets, &tenant, kind, &docs, false) {
                    tracing::error!(%tenant, kind = kind.as_str(), error = %e,
                        "a tenant's stored documents no longer validate; it runs on the global layer");
                }
            }
        }
        *cat.sets
            .write()
            .map_err(|_| ServerError::Config("catalog lock".into()))? = sets;
        Ok(cat)
    }

    fn snapshot(&self) -> Sets {
        match self.sets.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn swap(&self, sets: Sets) {
        match self.sets.write() {
            Ok(mut s) => *s = sets,
            Err(p) => *p.into_inner() = sets,
        }
    }

    /// The rule sets in force (for the pipeline at start).
    pub fn rule_book(&self) -> RuleBook {
        self.snapshot().rules
    }

    /// The global playbooks (for the responder at start).
    pub fn global_playbooks(&self) -> Arc<PlaybookSet> {
        self.snapshot().playbooks
    }

    /// Tenants' own playbook sets and policies (for the responder at start).
    pub fn tenant_layers(&self) -> TenantLayers {
        let s = self.snapshot();
        (s.tenant_playbooks, s.policies)
    }

    /// The rules in force for `tenant` (or the global ones), each with its layer.
    pub fn rules_in_force(&self, tenant: &TenantId, layer: Layer) -> Vec<(RuleInfo, Layer)> {
        let s = self.snapshot();
        let set = match layer {
            Layer::Global => s.rules.global().clone(),
            Layer::Tenant => s.rules.for_tenant(tenant).clone(),
        };
        set.rules()
            .map(|r| (r.clone(), layer_of(&r.file)))
            .collect()
    }

    /// The playbooks in force for `tenant` (or the global ones), in priority order.
    pub fn playbooks_in_force(&self, tenant: &TenantId, layer: Layer) -> Arc<PlaybookSet> {
        let s = self.snapshot();
        match layer {
            Layer::Global => s.playbooks,
            Layer::Tenant => s
                .tenant_playbooks
                .get(tenant)
                .cloned()
                .unwrap_or(s.playbooks),
        }
    }

    /// The policy in force for `tenant`, and whether it is the tenant's own.
    pub fn policy_in_force(&self, tenant: &TenantId) -> (TenantPolicy, Layer) {
        match self.snapshot().policies.get(tenant) {
            Some(p) => ((**p).clone(), Layer::Tenant),
            None => (
                self.responder.policy(tenant.as_str()).clone(),
                Layer::Global,
            ),
        }
    }

    /// The tenant's gateway policy in force (its own document's, else the configured
    /// one), shared, without copying the catalog: for the gateway's request path.
    pub fn gateway_policy(&self, tenant: &TenantId) -> Arc<antibody_respond::GatewayPolicy> {
        let sets = match self.sets.read() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match sets.policies.get(tenant) {
            Some(p) => p.gateway.clone(),
            None => self.responder.policy(tenant.as_str()).gateway.clone(),
        }
    }

    /// The tenant's document `name`, else the global file of that name.
    pub fn doc(
        &self,
        store: &Store,
        tenant: &TenantId,
        kind: DocKind,
        name: &str,
        layer: Layer,
    ) -> Result<DocView, LayerError> {
        check_name(kind, name)?;
        if layer == Layer::Tenant {
            if let Some(d) = store.doc(tenant, kind, name, None)? {
                return Ok(DocView {
                    name: d.name,
                    layer: Layer::Tenant,
                    format: None,
                    version: Some(d.info),
                    text: d.text,
                });
            }
        }
        let text = self
            .global_text(kind, name)?
            .ok_or_else(|| LayerError::NotFound(format!("{} `{name}`", kind.as_str())))?;
        Ok(DocView {
            name: name.to_owned(),
            layer: Layer::Global,
            format: Some(DocFormat::Yaml),
            version: None,
            text,
        })
    }

    /// Every stored version of the tenant's document, oldest first.
    pub fn versions(
        &self,
        store: &Store,
        tenant: &TenantId,
        kind: DocKind,
        name: &str,
    ) -> Result<Vec<DocVersion>, LayerError> {
        check_name(kind, name)?;
        let v = store.doc_versions(tenant, kind, name)?;
        if v.is_empty() {
            return Err(not_stored(kind, name));
        }
        Ok(v)
    }

    /// One version with its line diff against `against` (default: the version before it;
    /// the first version is compared with nothing).
    pub fn version(
        &self,
        store: &Store,
        tenant: &TenantId,
        kind: DocKind,
        name: &str,
        version: u32,
        against: Option<u32>,
    ) -> Result<(Doc, Option<u32>, Vec<String>), LayerError> {
        check_name(kind, name)?;
        let missing =
            |v: u32| LayerError::NotFound(format!("version {v} of {} `{name}`", kind.as_str()));
        let doc = store
            .doc(tenant, kind, name, Some(version))?
            .ok_or_else(|| missing(version))?;
        let base = against.or_else(|| version.checked_sub(1).filter(|v| *v > 0));
        let old = match base {
            Some(v) => {
                store
                    .doc(tenant, kind, name, Some(v))?
                    .ok_or_else(|| missing(v))?
                    .text
            }
            None => String::new(),
        };
        let lines = diff(&old, &doc.text);
        Ok((doc, base, lines))
    }

    /// Validates, stores and puts in force a new version of a tenant document.
    pub fn put(&self, store: &Store, apply: &dyn Apply, p: Put<'_>) -> Result<Stored, LayerError> {
        self.store_version(store, apply, p, None)
    }

    /// Stores version `version`'s text again as the newest version (validated against the
    /// global layer as it is now) and puts it in force.
    #[allow(clippy::too_many_arguments)]
    pub fn rollback(
        &self,
        store: &Store,
        apply: &dyn Apply,
        tenant: &TenantId,
        actor: &str,
        kind: DocKind,
        name: &str,
        version: u32,
        now: TimestampMs,
    ) -> Result<Stored, LayerError> {
        check_name(kind, name)?;
        let old = store
            .doc(tenant, kind, name, Some(version))?
            .ok_or_else(|| {
                LayerError::NotFound(format!("version {version} of {} `{name}`", kind.as_str()))
            })?;
        let p = Put {
            tenant,
            actor,
            kind,
            name,
            format: old.info.format,
            text: &old.text,
            now,
        };
        self.store_version(store, apply, p, Some(version))
    }

    fn store_version(
        &self,
        store: &Store,
        apply: &dyn Apply,
        p: Put<'_>,
        rollback_of: Option<u32>,
    ) -> Result<Stored, LayerError> {
        check_name(p.kind, p.name)?;
        let _serial = self
            .write
            .lock()
            .map_err(|_| LayerError::Io("catalog lock".into()))?;
        let mut docs = store.current_docs(p.tenant, p.kind)?;
        let before = docs
            .iter()
            .find(|d| d.name == p.name)
            .map(|d| d.text.clone());
        if before.is_none() && docs.len() >= MAX_DOCS {
            return Err(LayerError::BadRequest(format!(
                "a tenant keeps at most {MAX_DOCS} {} documents",
                p.kind.as_str()
            )));
        }
        docs.retain(|d| d.name != p.name);
        docs.push(Doc {
            name: p.name.to_owned(),
            info: DocVersion {
                version: 0,
                ts: p.now,
                actor: p.actor.to_owned(),
                format: p.format,
                sha256: String::new(),
                rollback_of,
            },
            text: p.text.to_owned(),
        });
        docs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sets = self.snapshot();
        self.rebuild(&mut sets, p.tenant, p.kind, &docs, true)?;
        let new = NewDoc {
            kind: p.kind,
            name: p.name,
            format: p.format,
            text: p.text,
            actor: p.actor,
            ts: p.now,
            rollback_of,
        };
        let version = store.put_doc(p.tenant, &new)?;
        store.make_durable()?;
        self.swap(sets.clone());
        push(apply, &sets, p.tenant, p.kind);
        let note = note(
            p.kind,
            Layer::Tenant,
            p.name,
            before.as_deref(),
            p.text,
            Some(&version),
        );
        Ok(Stored {
            name: p.name.to_owned(),
            version: Some(version),
            note,
        })
    }

    /// Replaces one global file (`<data-dir>/<kind>/<name>.yml`), validated with the rest of
    /// the global layer and under every tenant layer in force, then put in force.
    pub fn put_global(
        &self,
        store: &Store,
        apply: &dyn Apply,
        kind: DocKind,
        name: &str,
        text: &str,
    ) -> Result<Stored, LayerError> {
        check_name(kind, name)?;
        if kind == DocKind::Policy {
            return Err(LayerError::BadRequest(
                "the global policy is the `[respond]` configuration; it has no document".into(),
            ));
        }
        let _serial = self
            .write
            .lock()
            .map_err(|_| LayerError::Io("catalog lock".into()))?;
        let dir = self.data_dir.join(kind.as_str());
        let file = format!("{name}.yml");
        let before = std::fs::read_to_string(dir.join(&file)).ok();
        let mut sets = self.snapshot();
        let files = sources_with(&dir, &file, text)?;
        let tenants: Vec<TenantId> = match kind {
            DocKind::Rules => sets.rules.tenants().map(|(t, _)| t.clone()).collect(),
            _ => sets.tenant_playbooks.keys().cloned().collect(),
        };
        match kind {
            DocKind::Rules => {
                let mut global = antibody_rules::default_pack_sources();
                global.extend(files.into_iter().map(|(n, t)| RuleSource::new(n, t)));
                let set = RuleSet::compile(&global).map_err(invalid_yaml)?;
                sets.rules = RuleBook::new(Arc::new(set));
            }
            _ => {
                let mut global = PlaybookSet::default_sources();
                global.extend(files.into_iter().map(|(n, t)| PlaybookSource::new(n, t)));
                sets.playbooks = Arc::new(PlaybookSet::load(&global).map_err(invalid_yaml)?);
            }
        }
        for t in &tenants {
            let docs = store.current_docs(t, kind)?;
            self.rebuild_over(&mut sets, t, kind, &docs, &dir, &file, text)
                .map_err(|e| match e {
                    LayerError::Invalid { code, errors } => LayerError::Invalid {
                        code,
                        errors: format!(
                            "tenant {t}'s own {} would break:\n{errors}",
                            kind.as_str()
                        ),
                    },
                    other => other,
                })?;
        }
        write_atomically(&dir, &file, text)?;
        self.swap(sets.clone());
        match kind {
            DocKind::Rules => apply.rules(sets.rules.clone()),
            _ => {
                apply.playbooks(sets.playbooks.clone());
                for t in tenants {
                    apply.tenant_playbooks(t.clone(), sets.tenant_playbooks.get(&t).cloned());
                }
            }
        }
        Ok(Stored {
            name: name.to_owned(),
            version: None,
            note: note(kind, Layer::Global, name, before.as_deref(), text, None),
        })
    }

    /// Recompiles `tenant`'s layer of `kind` from `docs` into `sets`. `strict` also checks
    /// what only matters when a person stores a document (policy modes name playbooks).
    fn rebuild(
        &self,
        sets: &mut Sets,
        tenant: &TenantId,
        kind: DocKind,
        docs: &[Doc],
        strict: bool,
    ) -> Result<(), LayerError> {
        match kind {
            DocKind::Rules => {
                let global = self.global_rule_sources(None)?;
                let set = tenant_rules(&global, docs)?;
                sets.rules.set_tenant(tenant.clone(), set);
            }
            DocKind::Playbooks => {
                let global = self.global_playbook_sources(None)?;
                match tenant_playbooks(&global, docs)? {
                    Some(s) => sets.tenant_playbooks.insert(tenant.clone(), s),
                    None => sets.tenant_playbooks.remove(tenant),
                };
            }
            DocKind::Policy => {
                let doc = docs.iter().find(|d| d.name == POLICY);
                let in_force = sets.tenant_playbooks.get(tenant).unwrap_or(&sets.playbooks);
                let check = strict.then_some(&**in_force);
                match doc {
                    Some(d) => {
                        let base = self.responder.policy(tenant.as_str());
                        let p =
                            policy::parse(&d.text, d.info.format, base, check).map_err(|e| {
                                LayerError::Invalid {
                                    code: "invalid_policy",
                                    errors: e.join("\n"),
                                }
                            })?;
                        sets.policies.insert(tenant.clone(), Arc::new(p));
                    }
                    None => {
                        sets.policies.remove(tenant);
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Catalog::rebuild`] over a global layer whose `dir/file` is about to become `text`.
    #[allow(clippy::too_many_arguments)]
    fn rebuild_over(
        &self,
        sets: &mut Sets,
        tenant: &TenantId,
        kind: DocKind,
        docs: &[Doc],
        dir: &Path,
        file: &str,
        text: &str,
    ) -> Result<(), LayerError> {
        let pending = Some((dir, file, text));
        match kind {
            DocKind::Rules => {
                let set = tenant_rules(&self.global_rule_sources(pending)?, docs)?;
                sets.rules.set_tenant(tenant.clone(), set);
            }
            _ => {
                match tenant_playbooks(&self.global_playbook_sources(pending)?, docs)? {
                    Some(s) => sets.tenant_playbooks.insert(tenant.clone(), s),
                    None => sets.tenant_playbooks.remove(tenant),
                };
            }
        }
        Ok(())
    }

    /// The default pack and the data dir's rule files (with one file pending replacement).
    fn global_rule_sources(&self, pending: Pending<'_>) -> Result<Vec<RuleSource>, LayerError> {
        let mut out = antibody_rules::default_pack_sources();
        let files = self.global_files(DocKind::Rules, pending)?;
        out.extend(files.into_iter().map(|(n, t)| RuleSource::new(n, t)));
        Ok(out)
    }

    fn global_playbook_sources(
        &self,
        pending: Pending<'_>,
    ) -> Result<Vec<PlaybookSource>, LayerError> {
        let mut out = PlaybookSet::default_sources();
        let files = self.global_files(DocKind::Playbooks, pending)?;
        out.extend(files.into_iter().map(|(n, t)| PlaybookSource::new(n, t)));
        Ok(out)
    }

    fn global_files(
        &self,
        kind: DocKind,
        pending: Pending<'_>,
    ) -> Result<Vec<(String, String)>, LayerError> {
        match pending {
            Some((dir, file, text)) => sources_with(dir, file, text),
            None => {
                let dir = self.data_dir.join(kind.as_str());
                Ok(crate::yaml_files(&dir)
                    .map_err(|e| LayerError::Io(e.to_string()))?
                    .into_iter()
                    .map(|(p, t)| (p.display().to_string(), t))
                    .collect())
            }
        }
    }

    /// The global file `name`: the data dir's, else the default pack's.
    fn global_text(&self, kind: DocKind, name: &str) -> Result<Option<String>, LayerError> {
        let file = format!("{name}.yml");
        match std::fs::read_to_string(self.data_dir.join(kind.as_str()).join(&file)) {
            Ok(t) => return Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LayerError::Io(format!("reading {file}: {e}"))),
        }
        let pack = match kind {
            DocKind::Rules => antibody_rules::default_pack_sources()
                .into_iter()
                .map(|s| (s.name, s.text))
                .collect(),
            DocKind::Playbooks => PlaybookSet::default_sources()
                .into_iter()
                .map(|s| (s.name, s.text))
                .collect(),
            DocKind::Policy => Vec::new(),
        };
        let wanted = format!("default/{file}");
        Ok(pack.into_iter().find(|(n, _)| *n == wanted).map(|(_, t)| t))
    }
}

/// A tenant's own playbook sets and policies, by tenant.
pub type TenantLayers = (
    BTreeMap<TenantId, Arc<PlaybookSet>>,
    BTreeMap<TenantId, Arc<TenantPolicy>>,
);

/// A global file about to be replaced: its dir, file name and new text.
type Pending<'a> = Option<(&'a Path, &'a str, &'a str)>;

/// `tenant/<name>.yml` is a tenant's own document; anything else (`default/…`,
/// `<data-dir>/…`, which has a directory more) is global.
pub fn layer_of(file: &str) -> Layer {
    let own = file
        .strip_prefix("tenant/")
        .is_some_and(|rest| !rest.contains('/'));
    if own {
        Layer::Tenant
    } else {
        Layer::Global
    }
}

fn tenant_file(name: &str) -> String {
    format!("tenant/{name}.yml")
}

/// The tenant's whole rule set, or `None` when its documents hold no rule.
fn tenant_rules(global: &[RuleSource], docs: &[Doc]) -> Result<Option<Arc<RuleSet>>, LayerError> {
    let own: Vec<RuleSource> = docs
        .iter()
        .map(|d| RuleSource::new(tenant_file(&d.name), d.text.clone()))
        .collect();
    let set = RuleSet::compile_layered(global, &own).map_err(invalid_yaml)?;
    let any = set.rules().any(|r| layer_of(&r.file) == Layer::Tenant);
    Ok(any.then(|| Arc::new(set)))
}

/// The tenant's whole playbook set, or `None` when its documents hold no playbook.
fn tenant_playbooks(
    global: &[PlaybookSource],
    docs: &[Doc],
) -> Result<Option<Arc<PlaybookSet>>, LayerError> {
    let mut sources = global.to_vec();
    sources.extend(
        docs.iter()
            .map(|d| PlaybookSource::new(tenant_file(&d.name), d.text.clone())),
    );
    let set = PlaybookSet::load(&sources).map_err(invalid_yaml)?;
    let any = set
        .playbooks()
        .iter()
        .any(|p| layer_of(&p.file) == Layer::Tenant);
    Ok(any.then(|| Arc::new(set)))
}

/// Sends the tenant's new layer of `kind` where it takes effect.
fn push(apply: &dyn Apply, sets: &Sets, tenant: &TenantId, kind: DocKind) {
    match kind {
        DocKind::Rules => apply.rules(sets.rules.clone()),
        DocKind::Playbooks => {
            apply.tenant_playbooks(tenant.clone(), sets.tenant_playbooks.get(tenant).cloned())
        }
        DocKind::Policy => apply.tenant_policy(tenant.clone(), sets.policies.get(tenant).cloned()),
    }
}

fn note(
    kind: DocKind,
    layer: Layer,
    name: &str,
    before: Option<&str>,
    after: &str,
    version: Option<&DocVersion>,
) -> AuditNote {
    let rollback_of = version.and_then(|v| v.rollback_of);
    let mut data = BTreeMap::new();
    let layer_name = match layer {
        Layer::Global => "global",
        Layer::Tenant => "tenant",
    };
    data.insert("layer".to_owned(), layer_name.to_owned());
    data.insert("name".to_owned(), name.to_owned());
    data.insert(
        "before_sha256".to_owned(),
        before.map_or_else(|| "none".to_owned(), antibody_store::doc_sha256),
    );
    data.insert("after_sha256".to_owned(), antibody_store::doc_sha256(after));
    data.insert("diff".to_owned(), summary(before.unwrap_or(""), after));
    let what = match layer {
        Layer::Global => format!("global {} file `{name}.yml`", kind.as_str()),
        Layer::Tenant => format!("{} `{name}`", kind.as_str()),
    };
    let detail = match (version, rollback_of) {
        (Some(v), Some(old)) => {
            data.insert("version".to_owned(), v.version.to_string());
            data.insert("rollback_of".to_owned(), old.to_string());
            format!("{what}: version {} restores version {old}", v.version)
        }
        (Some(v), None) => {
            data.insert("version".to_owned(), v.version.to_string());
            format!("{what}: version {}", v.version)
        }
        (None, _) => format!("{what} replaced"),
    };
    let verb = if rollback_of.is_some() {
        "rollback"
    } else {
        "put"
    };
    AuditNote {
        kind: format!("{}_{verb}", kind.as_str()),
        subject: match layer {
            Layer::Global => format!("global/{name}"),
            Layer::Tenant => name.to_owned(),
        },
        detail,
        data,
    }
}

fn invalid_yaml(errors: impl std::fmt::Display) -> LayerError {
    LayerError::Invalid {
        code: "invalid_yaml",
        errors: errors.to_string(),
    }
}

fn not_stored(kind: DocKind, name: &str) -> LayerError {
    LayerError::NotFound(format!("stored versions of {} `{name}`", kind.as_str()))
}

/// A document name: letters, digits, `-` and `_`, so `<name>.yml` cannot leave its dir; the
/// policy has the one name `policy`.
/// The JSON Schema of a rule or playbook document's name, as [`check_name`] takes it.
pub struct DocName;

impl schemars::JsonSchema for DocName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DocName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
    }
}

fn check_name(kind: DocKind, name: &str) -> Result<(), LayerError> {
    if kind == DocKind::Policy {
        return if name == POLICY {
            Ok(())
        } else {
            Err(LayerError::BadRequest(
                "the policy document is named `policy`".into(),
            ))
        };
    }
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LayerError::BadRequest(
            "a document name is 1–64 characters of letters, digits, `-` and `_`".into(),
        ))
    }
}

/// The files of `dir` with `file` replaced by (or extended with) `text`.
fn sources_with(dir: &Path, file: &str, text: &str) -> Result<Vec<(String, String)>, LayerError> {
    let mut out: Vec<(String, String)> = crate::yaml_files(dir)
        .map_err(|e| LayerError::Io(e.to_string()))?
        .into_iter()
        .filter(|(p, _)| p.file_name().and_then(|f| f.to_str()) != Some(file))
        .map(|(p, t)| (p.display().to_string(), t))
        .collect();
    out.push((dir.join(file).display().to_string(), text.to_owned()));
    // In name order, as a restart will read them: later files take priority.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<(), LayerError> {
    let io = |e: std::io::Error| LayerError::Io(format!("writing {name}: {e}"));
    std::fs::create_dir_all(dir).map_err(io)?;
    crate::durable_file::replace(&dir.join(name), &[text.as_bytes()]).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use antibody_respond::Mode;

    /// Records what would have taken effect.
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl Seen {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
        fn push(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
    }

    impl Apply for Seen {
        fn rules(&self, book: RuleBook) {
            let own: Vec<String> = book.tenants().map(|(t, _)| t.to_string()).collect();
            self.push(format!("rules for {own:?}"));
        }
        fn playbooks(&self, _: Arc<PlaybookSet>) {
            self.push("global playbooks".into());
        }
        fn tenant_playbooks(&self, t: TenantId, set: Option<Arc<PlaybookSet>>) {
            self.push(format!("playbooks of {t}: {}", set.is_some()));
        }
        fn tenant_policy(&self, t: TenantId, p: Option<Arc<TenantPolicy>>) {
            self.push(format!("policy of {t}: {}", p.is_some()));
        }
    }

    const DRY_BF: &str = "- id: brute-force\n  trigger: {kinds: [brute_force]}\n  mode: dry_run\n  steps:\n    - action: notify\n";
    const CANARY: &str = "- id: canary\n  kind: canary\n  severity: high\n  events: {kinds: [http]}\n  signature: {fields: [query], literals: [canary-7f3a]}\n";

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        store: Store,
        cat: Catalog,
        seen: Seen,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let store = Store::open_in_memory().unwrap();
        let cat = Catalog::load(&path, Arc::default(), &store).unwrap();
        Fixture {
            _dir: dir,
            path,
            store,
            cat,
            seen: Seen::default(),
        }
    }

    fn put<'a>(t: &'a TenantId, kind: DocKind, name: &'a str, text: &'a str) -> Put<'a> {
        Put {
            tenant: t,
            actor: "k-b",
            kind,
            name,
            format: if kind == DocKind::Policy {
                DocFormat::Toml
            } else {
                DocFormat::Yaml
            },
            text,
            now: 1_000,
        }
    }

    #[test]
    fn a_tenant_playbook_replaces_the_global_one_for_that_tenant_only_and_rolls_back() {
        let f = fixture();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let s = f
            .cat
            .put(&f.store, &f.seen, put(&b, DocKind::Playbooks, "bf", DRY_BF))
            .unwrap();
        assert_eq!(s.version.as_ref().map(|v| v.version), Some(1));
        assert_eq!(f.seen.take(), ["playbooks of b: true"]);
        let mode = |t: &TenantId| {
            f.cat
                .playbooks_in_force(t, Layer::Tenant)
                .get("brute-force")
                .map(|p| p.mode)
        };
        assert_eq!(mode(&b), Some(Mode::DryRun));
        assert_eq!(mode(&a), Some(Mode::Auto));
        assert_eq!(s.note.kind, "playbooks_put");
        assert_eq!(s.note.data["before_sha256"], "none");
        assert_eq!(
            s.note.data["after_sha256"],
            antibody_store::doc_sha256(DRY_BF)
        );

        let notify = DRY_BF.replace("dry_run", "notify");
        let s = f
            .cat
            .put(
                &f.store,
                &f.seen,
                put(&b, DocKind::Playbooks, "bf", &notify),
            )
            .unwrap();
        assert_eq!(s.note.data["diff"], "-  mode: dry_run\n+  mode: notify");
        assert_eq!(mode(&b), Some(Mode::Notify));
        let (_, against, diff) = f
            .cat
            .version(&f.store, &b, DocKind::Playbooks, "bf", 2, None)
            .unwrap();
        assert_eq!(against, Some(1));
        assert!(diff.contains(&"+  mode: notify".to_owned()), "{diff:?}");

        let s = f
            .cat
            .rollback(
                &f.store,
                &f.seen,
                &b,
                "k-b",
                DocKind::Playbooks,
                "bf",
                1,
                2_000,
            )
            .unwrap();
        let v = s.version.unwrap();
        assert_eq!((v.version, v.rollback_of), (3, Some(1)));
        assert_eq!(s.note.kind, "playbooks_rollback");
        assert_eq!(mode(&b), Some(Mode::DryRun));
        let versions = f
            .cat
            .versions(&f.store, &b, DocKind::Playbooks, "bf")
            .unwrap();
        assert_eq!(versions.len(), 3);
        assert!(matches!(
            f.cat.versions(&f.store, &a, DocKind::Playbooks, "bf"),
            Err(LayerError::NotFound(_))
        ));
        // The global file of a name shows when the tenant has none.
        let view = f
            .cat
            .doc(
                &f.store,
                &a,
                DocKind::Playbooks,
                "brute_force",
                Layer::Tenant,
            )
            .unwrap();
        assert_eq!(view.layer, Layer::Global);
        assert!(view.text.contains("id: brute-force"));
    }

    #[test]
    fn invalid_documents_list_every_error_and_change_nothing() {
        let f = fixture();
        let b = TenantId::new("b");
        let bad = "- id: one\n  trigger: {kinds: [x]}\n  mode: yolo\n  steps:\n    - action: notify\n- id: two\n  steps: []\n";
        let err = f
            .cat
            .put(&f.store, &f.seen, put(&b, DocKind::Playbooks, "bad", bad))
            .unwrap_err();
        let LayerError::Invalid { code, errors } = err else {
            panic!("{err:?}")
        };
        assert_eq!(code, "invalid_yaml");
        assert!(errors.contains("tenant/bad.yml:3:"), "{errors}");
        assert!(errors.contains("tenant/bad.yml:7:"), "{errors}");
        let err = f
            .cat
            .put(
                &f.store,
                &f.seen,
                put(&b, DocKind::Policy, POLICY, "approvers = 0\nmode = 1\n"),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                LayerError::Invalid {
                    code: "invalid_policy",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(f.seen.take().is_empty());
        assert!(f.store.doc_tenants(DocKind::Playbooks).unwrap().is_empty());
        assert!(matches!(
            f.cat
                .put(&f.store, &f.seen, put(&b, DocKind::Rules, "../x", CANARY)),
            Err(LayerError::BadRequest(_))
        ));
    }

    #[test]
    fn tenant_layers_load_again_from_the_store_and_follow_global_changes() {
        let f = fixture();
        let b = TenantId::new("b");
        f.cat
            .put(&f.store, &f.seen, put(&b, DocKind::Rules, "canary", CANARY))
            .unwrap();
        let policy = "[modes]\nbrute-force = \"approval\"\n";
        f.cat
            .put(&f.store, &f.seen, put(&b, DocKind::Policy, POLICY, policy))
            .unwrap();
        assert_eq!(f.seen.take(), ["rules for [\"b\"]", "policy of b: true"]);
        let again = Catalog::load(&f.path, Arc::default(), &f.store).unwrap();
        let book = again.rule_book();
        let own = book.tenant(&b).expect("b's rules");
        assert_eq!(own.len(), book.global().len() + 1);
        let (_, policies) = again.tenant_layers();
        assert_eq!(
            policies[&b].mode_for("brute-force", Mode::Auto),
            Mode::Approval
        );
        let listed = again.rules_in_force(&b, Layer::Tenant);
        assert!(listed
            .iter()
            .any(|(r, l)| &*r.id == "canary" && *l == Layer::Tenant));

        // A global rule file reaches b's own set too.
        let extra = CANARY.replace("id: canary", "id: global-canary");
        f.cat
            .put_global(&f.store, &f.seen, DocKind::Rules, "extra", &extra)
            .unwrap();
        assert_eq!(f.seen.take(), ["rules for [\"b\"]"]);
        let own = f.cat.rules_in_force(&b, Layer::Tenant);
        assert!(own
            .iter()
            .any(|(r, l)| &*r.id == "global-canary" && *l == Layer::Global));
        assert!(f.path.join("rules/extra.yml").exists());
    }
}
