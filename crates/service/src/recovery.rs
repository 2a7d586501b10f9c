//! Password reset and email verification by mailed links.
//!
//! A link carries a single-use token of 256 random bits; only its SHA-256 is stored, with the
//! address it was sent to and (for a reset) the credential version it was issued at, so a change
//! of address or password voids it. The token row and the mail that carries it are written in one
//! transaction ([`domain::RecoveryRepository::issue_token`]); the mail waits in the outbox until
//! a [`crate::mail::DeliveryWorker`] has handed it to SMTP. Spending a token is one transaction
//! too: a reset sets the password, bumps the credential version, revokes every session and
//! clears a lockout.
use std::time::{Duration, Instant};

use domain::{
    Caller, EMAIL_REVERT_WINDOW, Email, EmailChange, Error, FieldErrors, ForgotPasswordInput,
    MailLimit, NewAccountToken, OutgoingMail, Password, Redemption, RequestContext,
    ResetPasswordInput, Result, Status, Timestamp, TokenIssue, TokenPurpose, User, UserId,
    VerifyEmailInput,
};

use crate::audit::{Event, FAILURE, SUCCESS};
use crate::auth::Auth;
use crate::core::{Core, chrono_duration};
use crate::hasher::Priority;

/// Tunables of the recovery flows. `Default` is the production configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// The product name in mails.
    pub product_name: String,
    /// Base of the links in mails (`<public_url>/reset-password#token=…`).
    pub public_url: String,
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    /// Login of an account whose address is not verified answers `EMAIL_NOT_VERIFIED`.
    pub require_verified_email: bool,
    /// Links of one kind mailed to one account per `mail_window`; more requests are answered
    /// the same and send nothing.
    pub mails_per_window: u32,
    pub mail_window: Duration,
    /// Mails with a link queued to one address per `mail_window`, whatever the account (mail
    /// bombing through many accounts); 0: no limit.
    pub mails_per_recipient: u32,
    /// Mails with a link queued to one domain per `mail_window`; 0: no limit.
    pub mails_per_domain: u32,
    /// `forgot_password` answers no sooner than this, so the work done for a known address
    /// (a token and a mail written) does not tell it from an unknown one.
    pub forgot_floor: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            product_name: "arcana".into(),
            public_url: "http://localhost:8080".into(),
            reset_ttl: Duration::from_secs(30 * 60),
            verify_ttl: Duration::from_secs(24 * 60 * 60),
            require_verified_email: false,
            mails_per_window: 3,
            mail_window: Duration::from_secs(15 * 60),
            mails_per_recipient: 5,
            mails_per_domain: 300,
            forgot_floor: Duration::from_millis(300),
        }
    }
}

/// "30 minutes", "24 hours".
pub(crate) fn spoken(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "hour")
    } else if s >= 60 {
        (s.div_ceil(60), "minute")
    } else {
        (s.max(1), "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `{{name}}` → value in `template`; values are HTML-escaped when `html`.
fn fill(template: &str, values: &[(&str, &str)], html: bool) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        let value = if html {
            html_escape(value)
        } else {
            (*value).to_owned()
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

/// The link, subject and bodies of the mail for `purpose`.
pub(crate) struct Rendered {
    pub link: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Rendered {
    /// This mail to `to`, queued at `now`, carrying a link that dies at `expires_at`.
    fn into_mail(
        self,
        to: &str,
        now: Timestamp,
        expires_at: Timestamp,
        limit: Option<MailLimit>,
    ) -> OutgoingMail {
        OutgoingMail {
            id: uuid::Uuid::new_v4(),
            recipient: to.to_owned(),
            subject: self.subject,
            text_body: self.text,
            html_body: self.html,
            created_at: now,
            expires_at: Some(expires_at),
            limit,
        }
    }
}

/// The mail for `purpose` to `user`; `new_email` is the address an email change moved to (the
/// revert notice names it).
pub(crate) fn render(
    config: &RecoveryConfig,
    purpose: TokenPurpose,
    user: &User,
    token: &str,
    new_email: &str,
) -> Rendered {
    let base = config.public_url.trim_end_matches('/');
    let (path, subject, text, html, ttl) = match purpose {
        TokenPurpose::Reset => (
            "reset-password",
            "reset your password",
            include_str!("../templates/reset.txt"),
            include_str!("../templates/reset.html"),
            config.reset_ttl,
        ),
        TokenPurpose::Verify => (
            "verify-email",
            "confirm your email address",
            include_str!("../templates/verify.txt"),
            include_str!("../templates/verify.html"),
            config.verify_ttl,
        ),
        TokenPurpose::RevertEmail => (
            "revert-email",
            "your email address was changed",
            include_str!("../templates/email-changed.txt"),
            include_str!("../templates/email-changed.html"),
            EMAIL_REVERT_WINDOW,
        ),
    };
    // In the fragment: browsers never send it, so no proxy or access log sees the token.
    let link = format!("{base}/{path}#token={token}");
    let valid_for = spoken(ttl);
    let values = [
        ("product", config.product_name.as_str()),
        ("username", user.username.as_str()),
        ("email", user.email.as_str()),
        ("link", link.as_str()),
        ("valid_for", valid_for.as_str()),
        ("new_email", new_email),
    ];
    Rendered {
        subject: format!("{}: {subject}", config.product_name),
        text: fill(text, &values, false),
        html: fill(html, &values, true),
        link,
    }
}

/// A security notice to `user`'s address: `change` says what changed ("two-step sign-in was
/// turned on"). It carries no link and is always queued (an attacker must not crowd it out).
pub(crate) fn security_notice(
    config: &RecoveryConfig,
    user: &User,
    change: &str,
    now: Timestamp,
) -> OutgoingMail {
    let values = [
        ("product", config.product_name.as_str()),
        ("username", user.username.as_str()),
        ("change", change),
    ];
    OutgoingMail {
        id: uuid::Uuid::new_v4(),
        recipient: user.email.clone(),
        subject: format!("{}: a security setting changed", config.product_name),
        text_body: fill(
            include_str!("../templates/security-notice.txt"),
            &values,
            false,
        ),
        html_body: fill(
            include_str!("../templates/security-notice.html"),
            &values,
            true,
        ),
        created_at: now,
        expires_at: None,
        limit: None,
    }
}

/// How a link request ended.
pub(crate) enum Issued {
    /// Stored (and mailed, when asked to); the link.
    Link(String),
    /// Too many links of this kind for the account lately: nothing stored.
    Throttled,
}

impl Core {
    /// Store a new `purpose` token for `user` (whose credentials are at `credential_version`)
    /// and, when `mail`, the mail that carries it, in one transaction.
    /// `recipient`: where the mail goes (`None`: the link is not mailed).
    pub(crate) async fn issue_link(
        &self,
        user: &User,
        credential_version: u32,
        purpose: TokenPurpose,
        recipient: Option<&str>,
    ) -> Result<Issued> {
        let cfg = &self.config.recovery;
        let now = self.now();
        let mail = recipient.is_some();
        let ttl = match purpose {
            TokenPurpose::Reset => cfg.reset_ttl,
            TokenPurpose::Verify => cfg.verify_ttl,
            TokenPurpose::RevertEmail => {
                return Err(Error::internal("revert links come with an email change"));
            }
        };
        let expires_at = now
            .checked_add_signed(chrono_duration(ttl))
            .ok_or_else(|| Error::internal("token TTL out of range"))?;
        let token = crypto::new_refresh_token();
        let r = render(cfg, purpose, user, &token, "");
        let link = r.link.clone();
        let limit = self.mail_limit(now);
        let issue = TokenIssue {
            token: NewAccountToken {
                id: uuid::Uuid::new_v4(),
                user_id: user.id,
                purpose,
                token_hash: crypto::sha256_hex(&token),
                email: user.email.clone(),
                credential_version,
                created_at: now,
                expires_at,
            },
            mail: recipient.map(|to| r.into_mail(to, now, expires_at, Some(limit))),
            throttle_since: now - chrono_duration(cfg.mail_window),
            throttle_max: if mail { cfg.mails_per_window } else { 0 },
        };
        if !self.repos.recovery.issue_token(issue).await? {
            return Ok(Issued::Throttled);
        }
        if mail {
            self.mail_queued.notify_waiters();
        }
        Ok(Issued::Link(link))
    }

    /// The mail-bombing limits of a mail with a link queued at `now`.
    fn mail_limit(&self, now: Timestamp) -> MailLimit {
        let cfg = &self.config.recovery;
        MailLimit {
            since: now - chrono_duration(cfg.mail_window),
            per_recipient: cfg.mails_per_recipient,
            per_domain: cfg.mails_per_domain,
        }
    }

    /// Mail `user` a verification link (after registration or an email change). A failure is
    /// logged, never the caller's: the account change stands and the link can be asked again.
    pub(crate) async fn send_verification(&self, ctx: &RequestContext, user: &User) {
        if user.is_verified {
            return;
        }
        let outcome = match self
            .issue_link(user, 0, TokenPurpose::Verify, Some(&user.email))
            .await
        {
            Ok(Issued::Link(_)) => "sent",
            Ok(Issued::Throttled) => "throttled",
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user.id, "verification mail not queued");
                "not_queued"
            }
        };
        self.audit(
            ctx,
            Event::new("auth.email_verification_requested", outcome).subject(user.id),
        )
        .await;
    }

    /// What changing `user`'s address (as read from storage) to `new_email` writes with the
    /// update: the revert link mailed to the old address (a notice, valid for
    /// [`EMAIL_REVERT_WINDOW`]) and the verification link mailed to the new one.
    pub(crate) fn email_change(&self, user: &User, new_email: &str) -> Result<EmailChange> {
        let cfg = &self.config.recovery;
        let now = self.now();
        let after = |d: Duration| {
            now.checked_add_signed(chrono_duration(d))
                .ok_or_else(|| Error::internal("token TTL out of range"))
        };
        let revert_token = crypto::new_refresh_token();
        let notice = render(
            cfg,
            TokenPurpose::RevertEmail,
            user,
            &revert_token,
            new_email,
        );
        let moved = User {
            email: new_email.to_owned(),
            is_verified: false,
            ..user.clone()
        };
        let verify_token = crypto::new_refresh_token();
        let verify = render(cfg, TokenPurpose::Verify, &moved, &verify_token, "");
        let (revert_expires_at, verify_expires_at) =
            (after(EMAIL_REVERT_WINDOW)?, after(cfg.verify_ttl)?);
        Ok(EmailChange {
            id: uuid::Uuid::new_v4(),
            expected_email: user.email.clone(),
            revert_token_hash: crypto::sha256_hex(&revert_token),
            revert_expires_at,
            verify_token: Some(NewAccountToken {
                id: uuid::Uuid::new_v4(),
                user_id: user.id,
                purpose: TokenPurpose::Verify,
                token_hash: crypto::sha256_hex(&verify_token),
                email: new_email.to_owned(),
                credential_version: 0,
                created_at: now,
                expires_at: verify_expires_at,
            }),
            // The security notice goes to a verified old address only (an unverified one was
            // never proven to be the owner's: mailing it would let anyone bomb an address by
            // switching an account to it and away), and then always: nobody can crowd it out.
            mails: user
                .is_verified
                .then(|| notice.into_mail(&user.email, now, revert_expires_at, None))
                .into_iter()
                .chain([verify.into_mail(
                    new_email,
                    now,
                    verify_expires_at,
                    Some(self.mail_limit(now)),
                )])
                .collect(),
        })
    }

    /// A link token was refused: the refusal (unknown, used, expired, superseded) is audited as
    /// a failure of `action`; the error is handed back.
    async fn token_refused(&self, ctx: &RequestContext, action: &'static str, e: Error) -> Error {
        if let Error::Validation(f) = &e {
            let reason = f.0.get("token").and_then(|m| m.first()).cloned();
            let event = Event::new(action, FAILURE).detail("reason", reason.unwrap_or_default());
            self.audit(ctx, event).await;
        }
        e
    }
}

/// Spending the token of a verification or revert link at `now` (nothing else to set).
fn link_redemption(token: &str, purpose: TokenPurpose, now: Timestamp) -> Result<Redemption> {
    Ok(Redemption {
        token_hash: token_hash(token).map_err(|m| Error::validation("token", m))?,
        purpose,
        new_password_hash: None,
        now,
        audit: Vec::new(),
    })
}

/// The stored form (SHA-256) of the token field, or its problem.
fn token_hash(token: &str) -> std::result::Result<String, String> {
    let token = token.trim();
    if token.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(crypto::sha256_hex(token))
}

impl Auth {
    pub(crate) async fn forgot(
        &self,
        ctx: &RequestContext,
        input: ForgotPasswordInput,
    ) -> Result<()> {
        let email = Email::parse(input.email.trim()).map_err(|m| Error::validation("email", m))?;
        let started = Instant::now();
        let outcome = self.request_reset(ctx, email.as_str()).await;
        // Known or not, sent or throttled: the same answer, no sooner than the floor.
        tokio::time::sleep_until((started + self.core.config.recovery.forgot_floor).into()).await;
        outcome
    }

    async fn request_reset(&self, ctx: &RequestContext, email: &str) -> Result<()> {
        let core = &self.core;
        let creds = core
            .repos
            .users
            .find_credentials(email)
            .await?
            .filter(|c| c.user.email.eq_ignore_ascii_case(email));
        let Some(creds) = creds.filter(|c| c.user.status == Status::Active) else {
            let event = Event::new("auth.password_reset_requested", FAILURE)
                .detail("reason", "no_active_account");
            core.audit(ctx, event).await;
            return Ok(());
        };
        // Only to a verified address: the account's own, or the one a recent email change
        // replaced (someone holding a session may have changed it). Else nowhere, and the same
        // answer.
        let since = core.now() - chrono_duration(EMAIL_REVERT_WINDOW);
        let Some(recipient) = core
            .repos
            .recovery
            .reset_recipient(creds.user.id, since)
            .await?
        else {
            let event = Event::new("auth.password_reset_requested", FAILURE)
                .subject(creds.user.id)
                .detail("reason", "no_verified_address");
            core.audit(ctx, event).await;
            return Ok(());
        };
        let issued = core
            .issue_link(
                &creds.user,
                creds.credential_version,
                TokenPurpose::Reset,
                Some(&recipient),
            )
            .await?;
        let outcome = match issued {
            Issued::Link(_) => SUCCESS,
            Issued::Throttled => "throttled",
        };
        core.audit(
            ctx,
            Event::new("auth.password_reset_requested", outcome).subject(creds.user.id),
        )
        .await;
        Ok(())
    }

    pub(crate) async fn reset(
        &self,
        ctx: &RequestContext,
        input: ResetPasswordInput,
    ) -> Result<UserId> {
        let core = &self.core;
        let mut errs = FieldErrors::new();
        let hash = errs.check("token", token_hash(&input.token));
        let password = errs.check("new_password", Password::parse(&input.new_password));
        errs.into_result()?;
        let (Some(token_hash), Some(password)) = (hash, password) else {
            return Err(Error::internal("validated fields missing"));
        };
        // One transaction: the token spent, the password set, every session revoked, the audit
        // event (whose subject the repository fills in).
        let event = Event::new("auth.password_reset", SUCCESS);
        let mut redemption = Redemption {
            token_hash,
            purpose: TokenPurpose::Reset,
            new_password_hash: None,
            now: core.now(),
            audit: core.records(ctx, vec![event]),
        };
        // A read first: a bogus, used or expired token costs no password hash.
        let redeemed = async {
            core.repos.recovery.check_token(redemption.clone()).await?;
            let new_hash = core.hasher.hash(password.expose(), Priority::Other).await?;
            redemption.new_password_hash = Some(new_hash);
            core.repos.recovery.redeem_token(redemption).await
        }
        .await;
        let user = match redeemed {
            Ok(user) => user,
            Err(e) => return Err(core.token_refused(ctx, "auth.password_reset", e).await),
        };
        core.forget_user(user.id).await;
        Ok(user.id)
    }

    pub(crate) async fn verify(
        &self,
        ctx: &RequestContext,
        input: VerifyEmailInput,
    ) -> Result<User> {
        let core = &self.core;
        let mut redemption = link_redemption(&input.token, TokenPurpose::Verify, core.now())?;
        redemption.audit = core.records(ctx, vec![Event::new("auth.email_verified", SUCCESS)]);
        let user = core.repos.recovery.redeem_token(redemption).await?;
        core.forget_user(user.id).await;
        Ok(user)
    }

    pub(crate) async fn revert(
        &self,
        ctx: &RequestContext,
        input: VerifyEmailInput,
    ) -> Result<User> {
        let core = &self.core;
        let mut redemption = link_redemption(&input.token, TokenPurpose::RevertEmail, core.now())?;
        // The masked address restored is filled in by the repository.
        let event = Event::new("user.email_reverted", SUCCESS)
            .detail("email", "")
            .detail("sessions_revoked", true);
        redemption.audit = core.records(ctx, vec![event]);
        let user = match core.repos.recovery.redeem_token(redemption).await {
            Ok(user) => user,
            Err(e) => return Err(core.token_refused(ctx, "user.email_reverted", e).await),
        };
        core.forget_user(user.id).await;
        Ok(user)
    }

    pub(crate) async fn resend(&self, caller: &Caller) -> Result<()> {
        let core = &self.core;
        let user = core
            .repos
            .users
            .find_by_id(caller.who.user_id)
            .await?
            .filter(|u| u.status != Status::Deleted)
            .ok_or(Error::Unauthorized)?;
        if user.is_verified {
            return Ok(());
        }
        match core
            .issue_link(&user, 0, TokenPurpose::Verify, Some(&user.email))
            .await?
        {
            Issued::Link(_) => {
                core.audit(
                    &caller.ctx,
                    Event::new("auth.email_verification_requested", SUCCESS).own(user.id),
                )
                .await;
                Ok(())
            }
            Issued::Throttled => Err(Error::RateLimited {
                retry_after: core.config.recovery.mail_window,
            }),
        }
    }

    /// A one-time password-reset link for `login` (username or email), not mailed: for an
    /// administrator to hand over when mail is not an option (`arcana admin reset-link`).
    pub async fn reset_link(&self, login: &str) -> Result<String> {
        let core = &self.core;
        let creds = core
            .repos
            .users
            .find_credentials(login.trim())
            .await?
            .ok_or(Error::NotFound)?;
        match core
            .issue_link(
                &creds.user,
                creds.credential_version,
                TokenPurpose::Reset,
                None,
            )
            .await?
        {
            Issued::Link(link) => {
                core.audit(
                    &RequestContext::default(),
                    Event::new("auth.password_reset_requested", "admin_link")
                        .subject(creds.user.id),
                )
                .await;
                Ok(link)
            }
            Issued::Throttled => Err(Error::internal("an unthrottled issue was throttled")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(spoken(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(spoken(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(spoken(Duration::from_secs(3600)), "1 hour");
        assert_eq!(spoken(Duration::from_secs(5)), "5 seconds");
    }

    #[test]
    fn html_bodies_escape_what_they_fill_in() {
        let out = fill(
            "<p>{{product}} {{link}}</p>",
            &[("product", "A&B <x>"), ("link", "l?a=1&b=2")],
            true,
        );
        assert_eq!(out, "<p>A&amp;B &lt;x&gt; l?a=1&amp;b=2</p>");
        let out = fill("{{product}}", &[("product", "A&B")], false);
        assert_eq!(out, "A&B");
    }
}
