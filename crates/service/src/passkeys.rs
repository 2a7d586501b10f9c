//! Passkeys (WebAuthn, webauthn-rs): registration, a passkey as the second step of a login, and
//! a sign-in with a passkey alone (a discoverable credential). The relying party is
//! `ARCANA_PUBLIC_URL` (its host is the RP ID, its origin the only one accepted).
//!
//! Every ceremony's state is stored (`webauthn_ceremonies`), single use and 5 minutes, under an
//! id derived from its challenge: the browser's answer names the challenge it signed, so any
//! replica finishes what another started and a ceremony cannot be finished twice.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{
    AuthSession, Caller, CeremonyKind, Error, FieldErrors, LoginCompletion, LoginSuccess,
    MfaFactors, PasskeyChallenge, PasskeyChange, PasskeyInfo, PasskeyLoginInput,
    PasskeyRegistrationInput, PasskeyRename, RequestContext, Result, Status, StoredPasskey,
    UserCredentials, UserId, WebauthnCeremony,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::audit::{Event, FAILURE, SUCCESS};
use crate::auth::Auth;
use crate::core::{Core, chrono_duration};
use crate::recovery::security_notice;

/// How long a ceremony may take.
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The relying party of `public_url` (`None`, with a warning, when it cannot be one).
pub(crate) fn relying_party(public_url: &str, name: &str) -> Option<Webauthn> {
    let built = Url::parse(public_url)
        .map_err(|e| e.to_string())
        .and_then(|origin| {
            let host = origin.host_str().ok_or("no host")?.to_owned();
            WebauthnBuilder::new(&host, &origin)
                .and_then(|b| b.rp_name(name).build())
                .map_err(|e| e.to_string())
        });
    match built {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(public_url, error = %e, "passkeys are off: ARCANA_PUBLIC_URL cannot be a WebAuthn relying party");
            None
        }
    }
}

/// The ceremony id a challenge is stored under.
fn ceremony_id(challenge: &[u8]) -> Uuid {
    let digest = Sha256::digest(challenge);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The challenge a browser's answer signed (from its clientDataJSON).
fn signed_challenge(client_data_json: &[u8]) -> Option<Vec<u8>> {
    let data: serde_json::Value = serde_json::from_slice(client_data_json).ok()?;
    URL_SAFE_NO_PAD
        .decode(data.get("challenge")?.as_str()?)
        .ok()
}

fn bad_credential() -> Error {
    Error::validation(
        "credential",
        "is not a WebAuthn credential for this challenge",
    )
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(Error::internal)
}

/// A passkey's or an access token's name: trimmed, 1 to 64 characters, no control characters.
pub(crate) fn parse_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::validation(
            "name",
            "must be 1 to 64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

fn info(p: &StoredPasskey) -> PasskeyInfo {
    PasskeyInfo {
        id: p.id,
        name: p.name.clone(),
        created_at: p.created_at,
        last_used_at: p.last_used_at,
    }
}

/// RFC 8176 methods of a passkey sign-in: a hardware-bound key, or a synced (software) one; user
/// verification was required, so it is multi-factor.
fn amr_of(passkey: &Passkey) -> [&'static str; 2] {
    let json = serde_json::to_value(passkey).unwrap_or_default();
    let synced = json["cred"]["backup_eligible"].as_bool().unwrap_or(false);
    [if synced { "swk" } else { "hwk" }, "mfa"]
}

impl Core {
    pub(crate) fn webauthn(&self) -> Result<&Webauthn> {
        self.webauthn.as_deref().ok_or_else(|| {
            Error::Forbidden(
                "passkeys are not available: ARCANA_PUBLIC_URL is not a usable origin".into(),
            )
        })
    }

    async fn ceremony(
        &self,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        challenge: &[u8],
        state: String,
    ) -> Result<Uuid> {
        let now = self.now();
        let id = ceremony_id(challenge);
        let ceremony = WebauthnCeremony {
            id,
            kind,
            user_id,
            state,
            created_at: now,
            expires_at: now + chrono_duration(CEREMONY_TTL),
            used_at: None,
        };
        self.repos.mfa.create_ceremony(ceremony).await?;
        Ok(id)
    }

    /// Take the ceremony `id` of `kind` (once); an unknown, used or expired one is
    /// `Unauthorized`.
    async fn take(&self, id: Uuid, kind: CeremonyKind) -> Result<WebauthnCeremony> {
        self.repos
            .mfa
            .take_ceremony(id, kind, self.now())
            .await?
            .ok_or(Error::Unauthorized)
    }

    fn passkeys_of(stored: &[StoredPasskey]) -> Result<Vec<Passkey>> {
        stored.iter().map(|p| from_json(&p.credential)).collect()
    }

    /// The passkey options of a login's second step, stored as a ceremony of `user_id`.
    pub(crate) async fn passkey_options(
        &self,
        user_id: UserId,
        factors: &MfaFactors,
    ) -> Result<Option<serde_json::Value>> {
        if factors.passkeys == 0 {
            return Ok(None);
        }
        let Ok(webauthn) = self.webauthn() else {
            return Ok(None);
        };
        let stored = self.repos.mfa.list_passkeys(user_id).await?;
        let passkeys = Self::passkeys_of(&stored)?;
        let (rcr, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(Error::internal)?;
        let challenge = rcr.public_key.challenge.to_vec();
        self.ceremony(
            CeremonyKind::SecondFactor,
            Some(user_id),
            &challenge,
            to_json(&state)?,
        )
        .await?;
        serde_json::to_value(&rcr)
            .map(Some)
            .map_err(Error::internal)
    }

    /// Check a passkey assertion as the second factor of `user_id`: `None` when it proves a
    /// passkey of the account (its counter is recorded), else why not. The RFC 8176 methods.
    pub(crate) async fn spend_passkey(
        &self,
        user_id: UserId,
        assertion: &serde_json::Value,
    ) -> Result<std::result::Result<[&'static str; 2], &'static str>> {
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(assertion.clone())
        else {
            return Ok(Err("malformed_assertion"));
        };
        let Some(challenge) = signed_challenge(&credential.response.client_data_json) else {
            return Ok(Err("malformed_assertion"));
        };
        let Some(ceremony) = self
            .repos
            .mfa
            .take_ceremony(
                ceremony_id(&challenge),
                CeremonyKind::SecondFactor,
                self.now(),
            )
            .await?
            .filter(|c| c.user_id == Some(user_id))
        else {
            return Ok(Err("unknown_challenge"));
        };
        let state: PasskeyAuthentication = from_json(&ceremony.state)?;
        let Ok(result) = self
            .webauthn()?
            .finish_passkey_authentication(&credential, &state)
        else {
            return Ok(Err("bad_assertion"));
        };
        self.record_use(user_id, &result).await
    }

    /// After a verified assertion: the passkey's counter and last use; its methods.
    async fn record_use(
        &self,
        user_id: UserId,
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> Result<std::result::Result<[&'static str; 2], &'static str>> {
        let cred_id = URL_SAFE_NO_PAD.encode(result.cred_id());
        let Some(stored) = self
            .repos
            .mfa
            .find_passkey(&cred_id)
            .await?
            .filter(|p| p.user_id == user_id)
        else {
            return Ok(Err("unknown_passkey"));
        };
        let mut passkey: Passkey = from_json(&stored.credential)?;
        passkey.update_credential(result);
        self.repos
            .mfa
            .record_passkey_use(stored.id, to_json(&passkey)?, self.now())
            .await?;
        Ok(Ok(amr_of(&passkey)))
    }

    fn passkey_change(
        &self,
        ctx: &RequestContext,
        user: &domain::User,
        event: Event,
        notice: Option<&str>,
    ) -> PasskeyChange {
        PasskeyChange {
            user_id: user.id,
            audit: self.records(ctx, vec![event]),
            mail: notice.map(|n| security_notice(&self.config.recovery, user, n, self.now())),
            now: self.now(),
        }
    }
}

impl Auth {
    pub(crate) async fn start_registration(&self, caller: &Caller) -> Result<PasskeyChallenge> {
        let core = &self.core;
        let webauthn = core.webauthn()?;
        let user = self.me_active(caller).await?;
        let existing = core.repos.mfa.list_passkeys(user.id).await?;
        let exclude = Core::passkeys_of(&existing)?
            .iter()
            .map(|p| p.cred_id().clone())
            .collect();
        let (ccr, state) = webauthn
            .start_passkey_registration(user.id, &user.username, &user.email, Some(exclude))
            .map_err(Error::internal)?;
        let challenge = ccr.public_key.challenge.to_vec();
        let id = core
            .ceremony(
                CeremonyKind::Registration,
                Some(user.id),
                &challenge,
                to_json(&state)?,
            )
            .await?;
        let mut options = serde_json::to_value(&ccr).map_err(Error::internal)?;
        // A discoverable credential where the authenticator can keep one, so the passkey also
        // signs in alone (without the username).
        if let Some(sel) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
            sel.insert("residentKey".into(), "preferred".into());
        }
        Ok(PasskeyChallenge {
            public_key: options["publicKey"].take(),
            challenge_id: id,
        })
    }

    pub(crate) async fn finish_registration(
        &self,
        caller: &Caller,
        input: PasskeyRegistrationInput,
    ) -> Result<PasskeyInfo> {
        let core = &self.core;
        let webauthn = core.webauthn()?;
        let mut errs = FieldErrors::new();
        let name = errs.check(
            "name",
            parse_name(&input.name)
                .map_err(|_| "must be 1 to 64 characters, without control characters".to_owned()),
        );
        let credential = errs.check(
            "credential",
            serde_json::from_value::<RegisterPublicKeyCredential>(input.credential).map_err(|_| {
                "is not a PublicKeyCredential (JSON, binary fields base64url)".to_owned()
            }),
        );
        errs.into_result()?;
        let (Some(name), Some(credential)) = (name, credential) else {
            return Err(bad_credential());
        };
        let user = self.me_active(caller).await?;
        let id = match input.challenge_id {
            Some(id) => id,
            None => ceremony_id(
                &signed_challenge(&credential.response.client_data_json)
                    .ok_or_else(bad_credential)?,
            ),
        };
        let ceremony = core.take(id, CeremonyKind::Registration).await?;
        if ceremony.user_id != Some(user.id) {
            return Err(Error::Unauthorized);
        }
        let state: PasskeyRegistration = from_json(&ceremony.state)?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                bad_credential()
            })?;
        let now = core.now();
        let stored = StoredPasskey {
            id: Uuid::new_v4(),
            user_id: user.id,
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            name,
            credential: to_json(&passkey)?,
            created_at: now,
            last_used_at: None,
        };
        let event = Event::new("mfa.passkey_added", SUCCESS)
            .own(user.id)
            .detail("passkey_id", stored.id.to_string())
            .detail("name", stored.name.clone());
        let change = core.passkey_change(&caller.ctx, &user, event, Some("a passkey was added"));
        core.repos.mfa.add_passkey(stored.clone(), change).await?;
        core.mail_queued.notify_waiters();
        Ok(info(&stored))
    }

    pub(crate) async fn passkeys_of(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>> {
        let list = self
            .core
            .repos
            .mfa
            .list_passkeys(caller.who.user_id)
            .await?;
        Ok(list.iter().map(info).collect())
    }

    pub(crate) async fn rename(
        &self,
        caller: &Caller,
        id: Uuid,
        input: PasskeyRename,
    ) -> Result<PasskeyInfo> {
        let core = &self.core;
        let name = parse_name(&input.name)?;
        let user = self.me_active(caller).await?;
        let event = Event::new("mfa.passkey_renamed", SUCCESS)
            .own(user.id)
            .detail("passkey_id", id.to_string());
        let change = core.passkey_change(&caller.ctx, &user, event, None);
        if !core.repos.mfa.rename_passkey(id, &name, change).await? {
            return Err(Error::NotFound);
        }
        core.repos
            .mfa
            .list_passkeys(user.id)
            .await?
            .iter()
            .find(|p| p.id == id)
            .map(info)
            .ok_or(Error::NotFound)
    }

    pub(crate) async fn delete(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let core = &self.core;
        let user = self.me_active(caller).await?;
        let event = Event::new("mfa.passkey_deleted", SUCCESS)
            .own(user.id)
            .detail("passkey_id", id.to_string());
        let change = core.passkey_change(&caller.ctx, &user, event, Some("a passkey was removed"));
        if !core.repos.mfa.delete_passkey(id, change).await? {
            return Err(Error::NotFound);
        }
        core.mail_queued.notify_waiters();
        Ok(())
    }

    pub(crate) async fn start_passwordless(
        &self,
        _ctx: &RequestContext,
    ) -> Result<PasskeyChallenge> {
        let core = &self.core;
        // (Only `publicKey` goes out: a button starts it, not the username field's autofill.)
        let (rcr, state): (_, DiscoverableAuthentication) = core
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(Error::internal)?;
        let challenge = rcr.public_key.challenge.to_vec();
        let id = core
            .ceremony(
                CeremonyKind::Passwordless,
                None,
                &challenge,
                to_json(&state)?,
            )
            .await?;
        let mut options = serde_json::to_value(&rcr).map_err(Error::internal)?;
        Ok(PasskeyChallenge {
            public_key: options["publicKey"].take(),
            challenge_id: id,
        })
    }

    pub(crate) async fn finish_passwordless(
        &self,
        ctx: &RequestContext,
        input: PasskeyLoginInput,
    ) -> Result<AuthSession> {
        let core = &self.core;
        let webauthn = core.webauthn()?;
        let credential: PublicKeyCredential =
            serde_json::from_value(input.credential).map_err(|_| bad_credential())?;
        let ceremony = core
            .take(input.challenge_id, CeremonyKind::Passwordless)
            .await?;
        let state: DiscoverableAuthentication = from_json(&ceremony.state)?;
        let refused = |reason: &'static str| {
            let event = Event::new("auth.login", FAILURE)
                .detail("reason", reason)
                .detail("method", "passkey");
            async move {
                core.audit(ctx, event).await;
                Error::InvalidCredentials
            }
        };
        let Ok((user_id, cred_id)) = webauthn.identify_discoverable_authentication(&credential)
        else {
            return Err(refused("unknown_passkey").await);
        };
        let cred_id = URL_SAFE_NO_PAD.encode(cred_id);
        let Some(stored) = core
            .repos
            .mfa
            .find_passkey(&cred_id)
            .await?
            .filter(|p| p.user_id == user_id)
        else {
            return Err(refused("unknown_passkey").await);
        };
        // The account's lockout applies: an attempt is taken before the signature is checked.
        let reserved = core.reserve_attempt(ctx, user_id).await?;
        let passkey: Passkey = from_json(&stored.credential)?;
        let Ok(result) =
            webauthn.finish_discoverable_authentication_v2(&credential, state, &passkey)
        else {
            let event = Event::new("auth.login", FAILURE)
                .subject(user_id)
                .detail("reason", "bad_assertion")
                .detail("method", "passkey")
                .detail("failures", reserved.attempt);
            core.audit(ctx, event).await;
            return Err(Error::InvalidCredentials);
        };
        let creds = core
            .repos
            .users
            .find_credentials_by_id(user_id)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        self.may_sign_in(ctx, &creds).await?;
        let amr = match core.record_use(user_id, &result).await? {
            Ok(amr) => amr,
            Err(_) => return Err(Error::InvalidCredentials),
        };
        let now = core.now();
        let (session, refresh_token) =
            core.new_session(ctx, user_id, creds.credential_version, now, &amr)?;
        let sid = session.id;
        let event = Event::new("auth.login", SUCCESS)
            .own(user_id)
            .detail("method", "passkey")
            .detail("passkey_id", stored.id.to_string());
        core.repos
            .users
            .complete_login(LoginCompletion {
                success: LoginSuccess {
                    user_id,
                    network: reserved.network,
                    attempt: reserved.attempt,
                    rehash: None,
                    now,
                },
                session: Some(session),
                audit: core.records(ctx, vec![event]),
            })
            .await?;
        let mut user = creds.user;
        user.last_login_at = Some(now);
        let tokens = core.token_pair(&user, sid, refresh_token, now)?;
        Ok(AuthSession { tokens, user })
    }

    /// The caller's account while it is active.
    async fn me_active(&self, caller: &Caller) -> Result<domain::User> {
        self.core
            .repos
            .users
            .find_by_id(caller.who.user_id)
            .await?
            .filter(|u| u.status == Status::Active)
            .ok_or(Error::Unauthorized)
    }

    /// The rules a right credential still has to pass: status, verified address.
    async fn may_sign_in(&self, ctx: &RequestContext, creds: &UserCredentials) -> Result<()> {
        let core = &self.core;
        let id = creds.user.id;
        if creds.user.status != Status::Active {
            let event = Event::new("auth.login", FAILURE)
                .subject(id)
                .detail("reason", "status")
                .detail("status", creds.user.status.as_str());
            core.audit(ctx, event).await;
            return Err(Error::Forbidden(format!(
                "account {}",
                creds.user.status.as_str()
            )));
        }
        if core.config.recovery.require_verified_email && !creds.user.is_verified {
            return Err(Error::EmailNotVerified);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremony_ids_follow_the_challenge() {
        assert_eq!(ceremony_id(b"abc"), ceremony_id(b"abc"));
        assert_ne!(ceremony_id(b"abc"), ceremony_id(b"abd"));
        let client_data = serde_json::json!({
            "type": "webauthn.get",
            "challenge": URL_SAFE_NO_PAD.encode(b"the challenge"),
            "origin": "https://id.example.com",
        });
        assert_eq!(
            signed_challenge(client_data.to_string().as_bytes()).as_deref(),
            Some(&b"the challenge"[..])
        );
        assert_eq!(signed_challenge(b"not json"), None);
        assert!(parse_name("  laptop ").is_ok_and(|n| n == "laptop"));
        for bad in ["", "   ", &"x".repeat(65), "a\u{7}b"] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
    }
}
