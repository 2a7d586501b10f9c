//! Audit events: what happened, to whom, by whom. Best effort by design — a failed write is
//! logged and never fails the request that caused it. Details never hold a secret.
use domain::{AuditEvent, Principal, RequestContext, UserId};
use serde_json::{Map, Value};

/// One event under construction: `Event::new("auth.login", "success").subject(id)`.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    action: &'static str,
    outcome: &'static str,
    actor: Option<UserId>,
    subject: Option<UserId>,
    details: Map<String, Value>,
}

pub(crate) use domain::mask_email;

pub(crate) const SUCCESS: &str = "success";
pub(crate) const FAILURE: &str = "failure";

impl Event {
    pub(crate) fn new(action: &'static str, outcome: &'static str) -> Self {
        Self {
            action,
            outcome,
            actor: None,
            subject: None,
            details: Map::new(),
        }
    }
    pub(crate) fn actor(mut self, id: UserId) -> Self {
        self.actor = Some(id);
        self
    }
    pub(crate) fn by(self, who: &Principal) -> Self {
        self.actor(who.user_id)
    }
    pub(crate) fn subject(mut self, id: UserId) -> Self {
        self.subject = Some(id);
        self
    }
    /// The user acting on their own account.
    pub(crate) fn own(self, id: UserId) -> Self {
        self.actor(id).subject(id)
    }
    pub(crate) fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub(crate) fn into_record(self, ctx: &RequestContext, at: domain::Timestamp) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7(),
            at,
            actor_id: self.actor,
            subject_id: self.subject,
            r#type: self.action.to_owned(),
            outcome: self.outcome.to_owned(),
            ip: ctx.ip.clone(),
            request_id: ctx.request_id.clone(),
            details: (!self.details.is_empty()).then(|| Value::Object(self.details).to_string()),
        }
    }
}
