//! The schema as an ordered list of migrations. `PRAGMA user_version` records how many
//! have been applied; `migrate` applies the rest, each in its own transaction, at open.
//! Never edit a released migration: append a new one.

use crate::StoreError;
use rusqlite::Connection;

/// Migration `i` moves the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tenants, keys, findings, incidents, meta.
    //
    // Findings and incidents carry no foreign key to `tenants`: the engine sink must never
    // fail a whole batch over a tenant row, and isolation comes from the tenant column
    // leading every key and index.
    "
    CREATE TABLE tenants (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE api_keys (
        id            TEXT PRIMARY KEY,
        tenant        TEXT NOT NULL REFERENCES tenants(id),
        role          TEXT NOT NULL,
        bootstrap     INTEGER NOT NULL,
        secret_sha256 BLOB NOT NULL UNIQUE,
        created_ms    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX api_keys_tenant ON api_keys (tenant);

    CREATE TABLE findings (
        tenant TEXT NOT NULL,
        id     TEXT NOT NULL,
        ts     INTEGER NOT NULL,
        entity TEXT NOT NULL,
        kind   TEXT NOT NULL,
        body   TEXT NOT NULL,
        UNIQUE (tenant, id)
    ) STRICT;
    CREATE INDEX findings_ts     ON findings (tenant, ts DESC, id DESC);
    CREATE INDEX findings_entity ON findings (tenant, entity, ts DESC, id DESC);
    CREATE INDEX findings_kind   ON findings (tenant, kind, ts DESC, id DESC);

    CREATE TABLE incidents (
        tenant     TEXT NOT NULL,
        id         TEXT NOT NULL,
        entity     TEXT NOT NULL,
        status     TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        body       TEXT NOT NULL,
        UNIQUE (tenant, id)
    ) STRICT;
    CREATE INDEX incidents_updated ON incidents (tenant, updated_ms DESC, id DESC);
    CREATE INDEX incidents_status  ON incidents (tenant, status, updated_ms DESC, id DESC);
    CREATE INDEX incidents_entity  ON incidents (tenant, entity, updated_ms DESC, id DESC);

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    ",
    // 2: the response engine's records: assets, actions, the audit chain (one per tenant).
    "
    CREATE TABLE assets (
        tenant     TEXT NOT NULL,
        entity     TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (tenant, entity)
    ) STRICT;

    CREATE TABLE actions (
        tenant     TEXT NOT NULL,
        id         TEXT NOT NULL,
        incident   TEXT NOT NULL,
        status     TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    ) STRICT;
    CREATE INDEX actions_updated ON actions (tenant, updated_ms DESC, id DESC);
    CREATE INDEX actions_status  ON actions (tenant, status, updated_ms DESC, id DESC);

    CREATE TABLE audit (
        tenant  TEXT NOT NULL,
        idx     INTEGER NOT NULL,
        ts      INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        kind    TEXT NOT NULL,
        subject TEXT NOT NULL,
        body    TEXT NOT NULL,
        PRIMARY KEY (tenant, idx)
    ) STRICT;
    CREATE INDEX audit_subject ON audit (tenant, subject, idx);
    ",
    // 3: the responder's view of each incident (assessment, diagnosis, actions), kept apart
    // from the engine's incident rows so neither writer clobbers the other.
    "
    CREATE TABLE incident_response (
        tenant   TEXT NOT NULL,
        incident TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (tenant, incident)
    ) STRICT;
    ",
    // 4: the model registry (every uploaded or retrained version, with its file) and the
    // analysts' labels on model findings (the active-learning set).
    "
    CREATE TABLE models (
        tenant     TEXT NOT NULL,
        id         TEXT NOT NULL,
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        slot       TEXT NOT NULL,
        body       TEXT NOT NULL,
        file       BLOB NOT NULL,
        PRIMARY KEY (tenant, id),
        UNIQUE (tenant, name, version)
    ) STRICT;

    CREATE TABLE model_labels (
        tenant     TEXT NOT NULL,
        finding    TEXT NOT NULL,
        model      TEXT NOT NULL,
        ts         INTEGER NOT NULL,
        body       TEXT NOT NULL,
        PRIMARY KEY (tenant, finding)
    ) STRICT;
    CREATE INDEX model_labels_model ON model_labels (tenant, model, ts);
    ",
    // 5: review-only model findings (unreported, marked for review), for the queue's bound
    // per tenant and model (see `models::MAX_REVIEW_ITEMS`). The terms must match
    // `models::REVIEW_ONLY` for SQLite to use the index.
    "
    CREATE INDEX findings_review ON findings (tenant, kind, ts DESC, id DESC)
        WHERE json_extract(body, '$.evidence.review') = 1
          AND json_extract(body, '$.severity') = 'info';
    ",
    // 6: the built-in notifications inbox (notify actions with no channel configured, and
    // escalations), newest first per tenant, or per incident.
    "
    CREATE TABLE notifications (
        tenant   TEXT NOT NULL,
        id       TEXT NOT NULL,
        ts       INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        incident TEXT NOT NULL,
        entity   TEXT NOT NULL,
        body     TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    ) STRICT;
    CREATE INDEX notifications_ts       ON notifications (tenant, ts DESC, id DESC);
    CREATE INDEX notifications_incident ON notifications (tenant, incident, ts DESC, id DESC);
    ",
    // 7: incidents people work. The response stage's record of an incident carries the
    // status people (or the engine's own resolutions) set; `incidents.status` shows it over
    // detection's (see `incidents::upsert_incidents`). `closed` is now `resolved`. Post-mortems
    // of resolved incidents, and the index they read an incident's actions through.
    "
    ALTER TABLE incident_response ADD COLUMN status TEXT;
    UPDATE incidents SET status = 'resolved' WHERE status = 'closed';
    CREATE INDEX actions_incident ON actions (tenant, incident);
    CREATE TABLE postmortems (
        tenant       TEXT NOT NULL,
        incident     TEXT NOT NULL,
        generated_ms INTEGER NOT NULL,
        body         TEXT NOT NULL,
        markdown     TEXT NOT NULL,
        PRIMARY KEY (tenant, incident)
    ) STRICT;
    ",
    // 8: tenants' own playbooks, rules and response policy, every version kept (see docs.rs).
    "
    CREATE TABLE tenant_docs (
        tenant      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        name        TEXT NOT NULL,
        version     INTEGER NOT NULL,
        ts          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        format      TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        rollback_of INTEGER,
        body        TEXT NOT NULL,
        PRIMARY KEY (tenant, kind, name, version)
    ) STRICT;
    ",
    // 9: keys that expire and say when they were last used; a key whose secret a person
    // chose keeps a salted slow hash (Argon2id, PHC string) in `secret_phc`, and random
    // bytes in `secret_sha256` (see keys.rs).
    "
    ALTER TABLE api_keys ADD COLUMN expires_ms INTEGER;
    ALTER TABLE api_keys ADD COLUMN last_used_ms INTEGER;
    ALTER TABLE api_keys ADD COLUMN secret_phc TEXT;
    CREATE INDEX api_keys_chosen ON api_keys (id) WHERE secret_phc IS NOT NULL;
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to `SCHEMA_VERSION`. Refuses a database written by a newer build
/// rather than guessing at its layout.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // `user_version` lives in the database header and is rolled back with the transaction.
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied store migration");
    }
    Ok(())
}

pub(crate) fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}
