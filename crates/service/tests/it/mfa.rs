//! Second factors in the service layer, on a clock the tests move: the mfa_token's lifetime and
//! bindings (network, account, credentials), the sealed secret at rest, the notice mails and the
//! audit trail.
use std::sync::Arc;
use std::time::Duration;

use domain::{
    AuthService, Error, LoginInput, LoginOutcome, MailClaim, MfaCodeInput, MfaPending,
    MfaRepository, MfaVerifyInput, PasswordInput, RecoveryRepository, RequestContext,
    TotpDisableInput, TotpSetupInput, UserService,
};
use service::{DataKeyHandle, MfaConfig, ServiceConfig};

use crate::common::*;

fn mfa_config() -> ServiceConfig {
    ServiceConfig {
        mfa: MfaConfig {
            data_key: DataKeyHandle(Some(Arc::new(crypto::mfa::DataKey::generate()))),
            require_for_admins: false,
        },
        ..config()
    }
}

fn from(ip: &str) -> RequestContext {
    RequestContext {
        ip: Some(ip.into()),
        ..ctx()
    }
}

impl TestApp {
    fn unix_now(&self) -> u64 {
        u64::try_from(service::Clock::now(self.clock.as_ref()).timestamp()).unwrap()
    }

    /// The code of `secret` `offset` seconds from the test clock's now.
    fn code(&self, secret: &[u8], offset: i64) -> String {
        crypto::mfa::totp_code(secret, self.unix_now().saturating_add_signed(offset)).unwrap()
    }

    /// Enrol TOTP for `username` (registered here): its principal, secret and recovery codes.
    async fn enrolled(&self, username: &str) -> (domain::Principal, Vec<u8>, Vec<String>) {
        let (_, who) = self.user(username).await;
        let caller = self.caller(&who);
        let setup = self
            .auth
            .totp_setup(
                &caller,
                TotpSetupInput {
                    current_password: PASSWORD.into(),
                },
            )
            .await
            .unwrap();
        let secret = crypto::mfa::secret_from_base32(&setup.secret).unwrap();
        let codes = self
            .auth
            .totp_confirm(
                &caller,
                MfaCodeInput {
                    code: self.code(&secret, 0),
                },
            )
            .await
            .unwrap();
        (who, secret, codes.recovery_codes)
    }

    async fn first_step(&self, ctx: &RequestContext, username: &str) -> MfaPending {
        let input = LoginInput {
            username_or_email: username.into(),
            password: PASSWORD.into(),
        };
        match AuthService::login(self.auth.as_ref(), ctx, input)
            .await
            .unwrap()
        {
            LoginOutcome::MfaRequired(p) => p,
            LoginOutcome::Session(_) => panic!("a session without the second factor"),
        }
    }

    async fn second_step(
        &self,
        ctx: &RequestContext,
        token: &str,
        code: String,
    ) -> domain::Result<domain::AuthSession> {
        let input = MfaVerifyInput {
            mfa_token: token.into(),
            code: Some(code),
            recovery_code: None,
            passkey: None,
        };
        self.auth.mfa_verify(ctx, input).await
    }

    /// Every mail in the outbox: (recipient, subject, text).
    async fn mails(&self) -> Vec<(String, String, String)> {
        let claim = MailClaim {
            worker: "test".into(),
            now: service::Clock::now(self.clock.as_ref()),
            lease: Duration::from_secs(1),
            limit: 100,
        };
        RecoveryRepository::claim_mail(self.repo(), claim)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.recipient, m.subject, m.text_body))
            .collect()
    }
}

#[tokio::test]
async fn the_mfa_token_lives_five_minutes() {
    let app = TestApp::with_config(mfa_config()).await;
    let (_, secret, _) = app.enrolled("olga").await;
    let pending = app.first_step(&ctx(), "olga").await;
    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    let late = app
        .second_step(&ctx(), &pending.mfa_token, app.code(&secret, 0))
        .await;
    assert!(matches!(late, Err(Error::Unauthorized)), "{late:?}");

    let pending = app.first_step(&ctx(), "olga").await;
    app.clock.advance(Duration::from_secs(5 * 60 - 1));
    let s = app
        .second_step(&ctx(), &pending.mfa_token, app.code(&secret, 0))
        .await
        .unwrap();
    assert_eq!(s.user.username, "olga");
    // Spent: the same token (and a fresh code of a later step) is refused.
    app.clock.advance(Duration::from_secs(30));
    let again = app
        .second_step(&ctx(), &pending.mfa_token, app.code(&secret, 0))
        .await;
    assert!(matches!(again, Err(Error::Unauthorized)), "{again:?}");
}

#[tokio::test]
async fn the_mfa_token_is_bound_to_network_account_and_credentials() {
    let app = TestApp::with_config(mfa_config()).await;
    let (who, secret, _) = app.enrolled("pia").await;
    let (_, other_secret, _) = app.enrolled("quinn").await;
    app.clock.advance(Duration::from_secs(30));
    let pending = app.first_step(&from("198.51.100.7"), "pia").await;
    // Another network: as if there were no such token.
    let elsewhere = app
        .second_step(
            &from("203.0.113.9"),
            &pending.mfa_token,
            app.code(&secret, 0),
        )
        .await;
    assert!(
        matches!(elsewhere, Err(Error::Unauthorized)),
        "{elsewhere:?}"
    );
    // Another account's code does not serve this account (asked from the same /24: the same
    // network).
    let wrong = app
        .second_step(
            &from("198.51.100.8"),
            &pending.mfa_token,
            app.code(&other_secret, 0),
        )
        .await;
    assert!(matches!(wrong, Err(Error::InvalidMfaCode)), "{wrong:?}");
    // A password change meanwhile kills the pending step.
    app.users
        .change_password(
            &app.caller(&who),
            who.user_id,
            PasswordInput {
                current_password: Some(PASSWORD.into()),
                new_password: "Another123".into(),
            },
        )
        .await
        .unwrap();
    let stale = app
        .second_step(
            &from("198.51.100.7"),
            &pending.mfa_token,
            app.code(&secret, 0),
        )
        .await;
    assert!(matches!(stale, Err(Error::Unauthorized)), "{stale:?}");
}

#[tokio::test]
async fn secrets_are_sealed_notices_mailed_and_changes_audited() {
    let app = TestApp::with_config(mfa_config()).await;
    let (who, secret, codes) = app.enrolled("rita").await;
    assert_eq!(codes.len(), 10);
    // At rest: neither the secret nor its base32 form; the account bound in.
    let stored = MfaRepository::find_factors(app.repo(), who.user_id)
        .await
        .unwrap();
    let sealed = stored.totp.unwrap().secret_enc;
    let b32 = totp_rs_base32(&secret);
    assert!(!sealed.contains(&b32), "{sealed}");
    let key = app.config.mfa.data_key.0.clone().unwrap();
    assert!(
        key.open(&sealed, &uuid::Uuid::new_v4().to_string())
            .is_err(),
        "sealed for this account only"
    );
    assert_eq!(key.open(&sealed, &who.user_id.to_string()).unwrap(), secret);

    // Off again (password and a code of the next step).
    app.clock.advance(Duration::from_secs(30));
    app.auth
        .totp_disable(
            &app.caller(&who),
            TotpDisableInput {
                current_password: PASSWORD.into(),
                code: app.code(&secret, 0),
            },
        )
        .await
        .unwrap();
    let notices: Vec<_> = app
        .mails()
        .await
        .into_iter()
        .filter(|(to, subject, _)| {
            to == "rita@example.com" && subject.ends_with("a security setting changed")
        })
        .map(|(_, _, text)| text)
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices.iter().any(|t| t.contains("was turned on")));
    assert!(notices.iter().any(|t| t.contains("was turned off")));
    assert!(notices.iter().all(|t| !t.contains(&b32)));
    let actions = app.audit_actions(who.user_id).await;
    for a in [
        "mfa.totp_setup:success",
        "mfa.totp_enabled:success",
        "mfa.totp_disabled:success",
    ] {
        assert!(actions.contains(&a.to_owned()), "{a} in {actions:?}");
    }
    // Nothing secret in any audit detail.
    for e in app.audit(who.user_id).await {
        let d = e.details.unwrap_or_default();
        assert!(
            !d.contains(&b32) && !codes.iter().any(|c| d.contains(c)),
            "{d}"
        );
    }
}

/// The base32 form an authenticator app is shown.
fn totp_rs_base32(secret: &[u8]) -> String {
    crypto::mfa::totp_enrolment(secret, "x", "y")
        .unwrap()
        .secret_base32
}
