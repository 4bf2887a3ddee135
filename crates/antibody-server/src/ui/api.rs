//! The JSON API's handlers, called with the session's key: the dashboard shows exactly
//! what `GET /v1/...` answers (a script with the same key sees the same data) and acts
//! through the same commands as `POST /v1/...`.

use crate::auth::Auth;
use crate::error::ApiError;
use crate::routes::{catalog, entities, findings, incidents, models, notifications, respond};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// At most this much of a handler's non-JSON-typed answer (audit, post-mortem) is read.
const MAX_ANSWER: usize = 32 << 20;

/// `pairs` as the query string of an API call.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// A query extractor over `qs`, as the router would have built it for `/v1/...?{qs}`.
fn query<T: DeserializeOwned>(qs: &str) -> Result<Result<Query<T>, QueryRejection>, ApiError> {
    let uri: Uri = format!("/?{qs}")
        .parse()
        .map_err(|_| ApiError::BadRequest("the query string is not valid".into()))?;
    Ok(Query::try_from_uri(&uri))
}

/// A handler's typed answer as the JSON a script would read (the pages render that).
fn value<T: serde::Serialize>(r: Result<Json<T>, ApiError>) -> Result<Value, ApiError> {
    let Json(v) = r?;
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn body_json(r: Result<Response, ApiError>) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(r?.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))
}

fn json_body(v: &Value) -> Body {
    Body::from(v.to_string())
}

/// The API's calls, bound to one state and one caller.
pub struct Api<'a> {
    pub st: &'a AppState,
    pub auth: &'a Auth,
}

impl Api<'_> {
    fn s(&self) -> State<AppState> {
        State(self.st.clone())
    }

    fn a(&self) -> Auth {
        self.auth.clone()
    }

    /// `GET /v1/entities?{qs}`
    pub async fn entities(&self, qs: &str) -> Result<Value, ApiError> {
        value(entities::list_entities(self.s(), self.a(), query(qs)?).await)
    }

    /// `GET /v1/entities/{entity}`
    pub async fn entity(&self, entity: &str) -> Result<Value, ApiError> {
        value(findings::get_entity(self.s(), self.a(), Ok(Path(entity.to_owned()))).await)
    }

    /// `GET /v1/entities/{entity}/verdict`
    pub async fn verdict(&self, entity: &str) -> Result<Value, ApiError> {
        value(respond::verdict(self.s(), self.a(), Ok(Path(entity.to_owned()))).await)
    }

    /// `GET /v1/findings?{qs}`
    pub async fn findings(&self, qs: &str) -> Result<Value, ApiError> {
        value(findings::list_findings(self.s(), self.a(), query(qs)?).await)
    }

    /// `GET /v1/findings/{id}`
    pub async fn finding(&self, id: &str) -> Result<Value, ApiError> {
        value(findings::get_finding(self.s(), self.a(), Ok(Path(id.to_owned()))).await)
    }

    /// `GET /v1/incidents?{qs}`
    pub async fn incidents(&self, qs: &str) -> Result<Value, ApiError> {
        value(findings::list_incidents(self.s(), self.a(), query(qs)?).await)
    }

    /// `GET /v1/incidents/{id}`
    pub async fn incident(&self, id: &str) -> Result<Value, ApiError> {
        value(findings::get_incident(self.s(), self.a(), Ok(Path(id.to_owned()))).await)
    }

    /// `GET /v1/incidents/{id}/postmortem`
    pub async fn postmortem(&self, id: &str) -> Result<Value, ApiError> {
        let r = incidents::postmortem(self.s(), self.a(), Ok(Path(id.to_owned())), query("")?);
        body_json(r.await).await
    }

    /// `GET /v1/actions?{qs}`
    pub async fn actions(&self, qs: &str) -> Result<Value, ApiError> {
        value(respond::list_actions(self.s(), self.a(), query(qs)?).await)
    }

    /// `GET /v1/actions/{id}`
    pub async fn action(&self, id: &str) -> Result<Value, ApiError> {
        value(respond::get_action(self.s(), self.a(), Ok(Path(id.to_owned()))).await)
    }

    /// `GET /v1/notifications?{qs}`
    pub async fn notifications(&self, qs: &str) -> Result<Value, ApiError> {
        value(notifications::list(self.s(), self.a(), query(qs)?).await)
    }

    /// `GET /v1/audit?{qs}`
    pub async fn audit(&self, qs: &str) -> Result<Value, ApiError> {
        body_json(respond::audit(self.s(), self.a(), query(qs)?).await).await
    }

    /// `GET /v1/audit/verify`
    pub async fn audit_verify(&self) -> Result<Value, ApiError> {
        value(respond::audit_verify(self.s(), self.a()).await)
    }

    /// `POST /v1/actions/{id}/{approve|reject|undo}`
    pub async fn answer_action(&self, id: &str, verb: Verb) -> Result<Value, ApiError> {
        let (s, a, p) = (self.s(), self.a(), Ok(Path(id.to_owned())));
        let b = Body::empty();
        value(match verb {
            Verb::Approve => respond::approve(s, a, p, b).await,
            Verb::Reject => respond::reject(s, a, p, b).await,
            Verb::Undo => respond::undo(s, a, p, b).await,
        })
    }

    /// `POST /v1/actions/approve-all`, `/v1/actions/reject-all`, `/v1/entities/heal-all`
    pub async fn answer_all(&self, what: All) -> Result<Value, ApiError> {
        match what {
            All::Approve => value(respond::approve_all(self.s(), self.a(), Body::empty()).await),
            All::Reject => value(respond::reject_all(self.s(), self.a(), Body::empty()).await),
            All::Heal => value(entities::heal_all(self.s(), self.a(), Body::empty()).await),
        }
    }

    /// `POST /v1/entities/{entity}/heal`
    pub async fn heal(&self, entity: &str) -> Result<Value, ApiError> {
        value(
            respond::heal(
                self.s(),
                self.a(),
                Ok(Path(entity.to_owned())),
                Body::empty(),
            )
            .await,
        )
    }

    /// `POST /v1/incidents/{id}/{ack|assign|notes|resolve|reopen}` with `body`.
    pub async fn work_incident(
        &self,
        id: &str,
        op: IncidentVerb,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let (s, a, p, b) = (self.s(), self.a(), Ok(Path(id.to_owned())), json_body(body));
        value(match op {
            IncidentVerb::Ack => incidents::ack(s, a, p, b).await,
            IncidentVerb::Assign => incidents::assign(s, a, p, b).await,
            IncidentVerb::Note => incidents::note(s, a, p, b).await,
            IncidentVerb::Resolve => incidents::resolve(s, a, p, b).await,
            IncidentVerb::Reopen => incidents::reopen(s, a, p, b).await,
        })
    }

    /// `GET /v1/rules`, `GET /v1/playbooks`, `GET /v1/policy`: what is in force.
    pub async fn in_force(&self, doc: Doc) -> Result<Value, ApiError> {
        match doc {
            Doc::Rules => value(catalog::list_rules(self.s(), self.a(), query("")?).await),
            Doc::Playbooks => value(catalog::list_playbooks(self.s(), self.a(), query("")?).await),
            Doc::Policy => value(catalog::get_policy(self.s(), self.a()).await),
        }
    }

    /// `GET /v1/{rules|playbooks}/{name}` (the tenant's document, else the global file);
    /// the policy's document is in [`Self::in_force`].
    pub async fn doc(&self, doc: Doc, name: &str) -> Result<Value, ApiError> {
        let (s, a, p) = (self.s(), self.a(), Ok(Path(name.to_owned())));
        value(match doc {
            Doc::Rules => catalog::get_doc::<catalog::Rules>(s, a, p, query("")?).await,
            Doc::Playbooks => catalog::get_doc::<catalog::Playbooks>(s, a, p, query("")?).await,
            Doc::Policy => return Err(ApiError::NotFound("policy documents by name".into())),
        })
    }

    /// `PUT /v1/{rules|playbooks}/{name}` (YAML) or `PUT /v1/policy` (TOML).
    pub async fn put_doc(&self, doc: Doc, name: &str, text: String) -> Result<Value, ApiError> {
        let (s, a, p) = (self.s(), self.a(), Ok(Path(name.to_owned())));
        let body = Body::from(text);
        value(match doc {
            Doc::Rules => catalog::put_doc::<catalog::Rules>(s, a, p, query("")?, body).await,
            Doc::Playbooks => {
                catalog::put_doc::<catalog::Playbooks>(s, a, p, query("")?, body).await
            }
            Doc::Policy => {
                let mut h = axum::http::HeaderMap::new();
                h.insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/toml"),
                );
                catalog::put_policy(s, a, h, body).await
            }
        })
    }

    /// `GET /v1/{rules|playbooks}/{name}/versions`, `GET /v1/policy/versions`
    pub async fn versions(&self, doc: Doc, name: &str) -> Result<Value, ApiError> {
        let (s, a, p) = (self.s(), self.a(), Ok(Path(name.to_owned())));
        value(match doc {
            Doc::Rules => catalog::versions::<catalog::Rules>(s, a, p).await,
            Doc::Playbooks => catalog::versions::<catalog::Playbooks>(s, a, p).await,
            Doc::Policy => catalog::policy_versions(s, a).await,
        })
    }

    /// `POST /v1/{rules|playbooks}/{name}/rollback`, `POST /v1/policy/rollback`
    pub async fn rollback(&self, doc: Doc, name: &str, version: u32) -> Result<Value, ApiError> {
        let (s, a, p) = (self.s(), self.a(), Ok(Path(name.to_owned())));
        let body = json_body(&serde_json::json!({ "version": version }));
        value(match doc {
            Doc::Rules => catalog::rollback::<catalog::Rules>(s, a, p, body).await,
            Doc::Playbooks => catalog::rollback::<catalog::Playbooks>(s, a, p, body).await,
            Doc::Policy => catalog::rollback_policy(s, a, body).await,
        })
    }

    /// `GET /v1/models`
    pub async fn models(&self) -> Result<Value, ApiError> {
        value(models::list(self.s(), self.a()).await)
    }

    /// `POST /v1/models/{id}/promote`, `POST /v1/models/{id}/rollback`
    pub async fn change_model(&self, id: &str, promote: bool) -> Result<Value, ApiError> {
        let (s, a, p) = (self.s(), self.a(), Ok(Path(id.to_owned())));
        value(if promote {
            models::promote(s, a, p, Body::empty()).await
        } else {
            models::rollback(s, a, p, Body::empty()).await
        })
    }

    /// `POST /v1/feedback` with `body`.
    pub async fn feedback(&self, body: &Value) -> Result<Value, ApiError> {
        let (_, answer) = respond::feedback(self.s(), self.a(), json_body(body)).await?;
        value(Ok(answer))
    }
}

/// The tenant's response documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doc {
    Rules,
    Playbooks,
    Policy,
}

impl Doc {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rules" => Some(Self::Rules),
            "playbooks" => Some(Self::Playbooks),
            "policy" => Some(Self::Policy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Playbooks => "playbooks",
            Self::Policy => "policy",
        }
    }
}

/// What a person may answer one action with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Approve,
    Reject,
    Undo,
}

impl Verb {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Self::Approve),
            "reject" => Some(Self::Reject),
            "undo" => Some(Self::Undo),
            _ => None,
        }
    }
}

/// The inbox's bulk answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum All {
    Approve,
    Reject,
    Heal,
}

impl All {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve-all" => Some(Self::Approve),
            "reject-all" => Some(Self::Reject),
            "heal-all" => Some(Self::Heal),
            _ => None,
        }
    }
}

/// What a person does to an incident (the path segment of the API call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentVerb {
    Ack,
    Assign,
    Note,
    Resolve,
    Reopen,
}

impl IncidentVerb {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ack" => Some(Self::Ack),
            "assign" => Some(Self::Assign),
            "notes" => Some(Self::Note),
            "resolve" => Some(Self::Resolve),
            "reopen" => Some(Self::Reopen),
            _ => None,
        }
    }
}
