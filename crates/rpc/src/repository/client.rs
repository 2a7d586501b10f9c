//! Client adapter: the repository ports implemented by calling `RepositoryService`.
use async_trait::async_trait;
use domain::{
    AccessTokenOwner, AccessTokenRepository, AttemptReservation, AuditEvent, AuditPage, AuditQuery,
    AuditRepository, CeremonyKind, ClientId, ClientPage, ClientQuery, CodeRedemption, Consent,
    DeliveryClaim, DeliveryPage, DeliveryQuery, DeliverySettlement, FactorRemoval, Grant,
    LoginAttempt, LoginBegun, LoginCompletion, LoginStart, MailClaim, MailSettlement,
    MaintenanceRepository, MfaChallenge, MfaFactors, MfaRepository, NewCode, NewSession, NewUser,
    OidcRepository, OutboxStats, OutgoingMail, PasskeyChange, PasswordChange, QueuedDelivery,
    QueuedMail, RecoveryCodeSet, RecoveryRepository, Redeemed, Redemption, Result, Rotation,
    Session, SessionEnd, SessionId, SessionOwner, SessionRepository, StoredAccessToken,
    StoredClient, StoredCode, StoredPasskey, StoredServiceAccount, StoredWebhook, TestDelivery,
    Timestamp, TokenIssue, TotpConfirmation, TotpEnrolment, User, UserChange, UserCredentials,
    UserDeletion, UserId, UserPage, UserQuery, UserRepository, UserRevocation, WebauthnCeremony,
    Webhook, WebhookDelivery, WebhookRepository,
};
use uuid::Uuid;

use crate::client::{Retry, Upstream};
use crate::internal as pb;
use crate::internal::repository_service_rpcs as rpcs;

/// The repository ports over gRPC. Every call carries the repository credential, the request id
/// in scope and a deadline (all from the [`Upstream`]); idempotent reads are retried while the
/// layer below is unavailable, writes never are. Errors come back as the domain error the server
/// answered. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RepositoryClient {
    upstream: Upstream,
}

/// `repository_call!(self, Read|Write, method, message)`: one call of `RepositoryService`.
macro_rules! repository_call {
    ($self:ident, $retry:ident, $method:ident, $msg:expr) => {{
        let up = &$self.upstream;
        up.call(rpcs::$method, Retry::$retry, &$msg, &|body| {
            up.request(body)
        })
        .await
    }};
}

impl RepositoryClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }
}

#[async_trait]
impl UserRepository for RepositoryClient {
    async fn ping(&self) -> Result<()> {
        repository_call!(self, Read, ping, pb::Empty {})
    }
    async fn create_user(&self, user: NewUser, audit: Vec<AuditEvent>) -> Result<User> {
        let msg = pb::CreateAccountRequest::new(user, audit);
        repository_call!(self, Write, create_account, msg)
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        repository_call!(self, Read, find_user_by_id, pb::IdRequest::new(id))
    }
    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>> {
        let msg = pb::FindCredentialsRequest::new(login.to_owned());
        repository_call!(self, Read, find_credentials, msg)
    }
    async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>> {
        repository_call!(self, Read, find_credentials_by_id, pb::IdRequest::new(id))
    }
    async fn list(&self, query: &UserQuery) -> Result<UserPage> {
        repository_call!(self, Read, list_users, pb::UserQuery::from(query))
    }
    async fn change_user(&self, change: UserChange) -> Result<Option<User>> {
        repository_call!(self, Write, change_user, pb::UserChange::from(change))
    }
    async fn delete_user(&self, deletion: UserDeletion) -> Result<bool> {
        repository_call!(self, Write, delete_user, pb::UserDeletion::from(deletion))
    }
    async fn begin_login(&self, start: LoginStart) -> Result<Option<LoginBegun>> {
        repository_call!(self, Write, begin_login, pb::LoginStart::from(start))
    }
    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        let msg = pb::AttemptReservation::from(r);
        repository_call!(self, Write, reserve_login_attempt, msg)
    }
    async fn complete_login(&self, completion: LoginCompletion) -> Result<()> {
        let msg = pb::LoginCompletion::from(completion);
        repository_call!(self, Write, complete_login, msg)
    }
    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        let msg = pb::PasswordChange::from(change);
        repository_call!(self, Write, change_password, msg)
    }
    async fn count_active_admins(&self) -> Result<u64> {
        repository_call!(self, Read, count_active_admins, pb::Empty {})
    }
}

#[async_trait]
impl SessionRepository for RepositoryClient {
    async fn create(&self, session: NewSession) -> Result<Session> {
        repository_call!(self, Write, create_session, pb::NewSession::from(session))
    }
    async fn find(&self, id: SessionId) -> Result<Option<Session>> {
        repository_call!(self, Read, find_session, pb::IdRequest::new(id))
    }
    async fn find_with_owner(&self, id: SessionId) -> Result<Option<SessionOwner>> {
        repository_call!(self, Read, find_session_with_owner, pb::IdRequest::new(id))
    }
    async fn rotate(&self, rotation: Rotation) -> Result<Option<SessionOwner>> {
        repository_call!(
            self,
            Write,
            rotate_live_session,
            pb::Rotation::from(rotation)
        )
    }
    async fn end_session(&self, end: SessionEnd) -> Result<bool> {
        repository_call!(self, Write, end_session, pb::SessionEnd::from(end))
    }
    async fn revoke_all_for_user(&self, r: UserRevocation) -> Result<u64> {
        let msg = pb::UserRevocation::from(r);
        repository_call!(self, Write, revoke_all_sessions, msg)
    }
    async fn list_live_for_user(&self, user_id: UserId, now: Timestamp) -> Result<Vec<Session>> {
        let msg = pb::AtRequest::new(user_id, now);
        repository_call!(self, Read, list_live_sessions, msg)
    }
}

#[async_trait]
impl AuditRepository for RepositoryClient {
    async fn record_all(&self, events: Vec<AuditEvent>) -> Result<()> {
        repository_call!(
            self,
            Write,
            record_audit_events,
            pb::AuditEvents::from(events)
        )
    }
    async fn list_events(&self, query: &AuditQuery) -> Result<AuditPage> {
        repository_call!(self, Read, list_audit, pb::AuditQuery::from(query.clone()))
    }
}

#[async_trait]
impl RecoveryRepository for RepositoryClient {
    async fn issue_token(&self, issue: TokenIssue) -> Result<bool> {
        repository_call!(self, Write, issue_token, pb::TokenIssue::from(issue))
    }
    async fn redeem_token(&self, redemption: Redemption) -> Result<User> {
        repository_call!(self, Write, redeem_token, pb::Redemption::from(redemption))
    }
    async fn check_token(&self, redemption: Redemption) -> Result<()> {
        repository_call!(self, Read, check_token, pb::Redemption::from(redemption))
    }
    async fn reset_recipient(
        &self,
        user_id: UserId,
        changed_since: Timestamp,
    ) -> Result<Option<String>> {
        let msg = pb::ResetRecipientRequest::new(user_id, changed_since);
        repository_call!(self, Read, reset_recipient, msg)
    }
    async fn claim_mail(&self, claim: MailClaim) -> Result<Vec<QueuedMail>> {
        repository_call!(self, Write, claim_mail, pb::MailClaim::from(claim))
    }
    async fn settle_mail(&self, settlement: MailSettlement) -> Result<bool> {
        repository_call!(
            self,
            Write,
            settle_mail,
            pb::MailSettlement::from(settlement)
        )
    }
    async fn outbox_stats(&self) -> Result<OutboxStats> {
        repository_call!(self, Read, outbox_stats, pb::Empty {})
    }
    async fn purge_recovery(&self, before: Timestamp) -> Result<u64> {
        repository_call!(self, Write, purge_recovery, pb::PurgeRequest::new(before))
    }
}

#[async_trait]
impl MaintenanceRepository for RepositoryClient {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let msg = pb::LeaseRequest::new(name.to_owned(), holder.to_owned(), now, until);
        repository_call!(self, Write, try_lease, msg)
    }
    async fn purge_sessions(&self, before: Timestamp, limit: u32) -> Result<u64> {
        repository_call!(
            self,
            Write,
            purge_sessions,
            pb::PurgeBatch::new(before, limit)
        )
    }
    async fn purge_audit(&self, before: Timestamp, limit: u32) -> Result<u64> {
        repository_call!(self, Write, purge_audit, pb::PurgeBatch::new(before, limit))
    }
}

#[async_trait]
impl OidcRepository for RepositoryClient {
    async fn create_client(&self, client: StoredClient, audit: Vec<AuditEvent>) -> Result<()> {
        let msg = pb::OidcClientWrite::new(client, audit);
        repository_call!(self, Write, create_oidc_client, msg)
    }
    async fn find_client(&self, id: ClientId) -> Result<Option<StoredClient>> {
        repository_call!(self, Read, find_oidc_client, pb::IdRequest::new(id))
    }
    async fn list_clients(&self, query: &ClientQuery) -> Result<ClientPage> {
        let msg = pb::ClientQuery::from(query.clone());
        repository_call!(self, Read, list_oidc_clients, msg)
    }
    async fn update_client(&self, client: StoredClient, audit: Vec<AuditEvent>) -> Result<bool> {
        let msg = pb::OidcClientWrite::new(client, audit);
        repository_call!(self, Write, update_oidc_client, msg)
    }
    async fn delete_client(
        &self,
        id: ClientId,
        audit: Vec<AuditEvent>,
        now: Timestamp,
    ) -> Result<bool> {
        let msg = pb::OidcClientDeletion::new(id, audit, now);
        repository_call!(self, Write, delete_oidc_client, msg)
    }
    async fn create_code(&self, code: NewCode) -> Result<()> {
        repository_call!(self, Write, create_oidc_code, pb::OidcCode::from(code))
    }
    async fn find_code(&self, code_hash: &str) -> Result<Option<StoredCode>> {
        let msg = pb::FindOidcCodeRequest::new(code_hash.to_owned());
        repository_call!(self, Read, find_oidc_code, msg)
    }
    async fn redeem_code(&self, redemption: CodeRedemption) -> Result<Redeemed> {
        let msg = pb::CodeRedemption::from(redemption);
        repository_call!(self, Write, redeem_oidc_code, msg)
    }
    async fn find_grant(&self, session_id: SessionId) -> Result<Option<Grant>> {
        repository_call!(self, Read, find_oidc_grant, pb::IdRequest::new(session_id))
    }
    async fn find_consent(&self, user_id: UserId, client_id: ClientId) -> Result<Option<Consent>> {
        let msg = pb::ConsentKey::new(user_id, client_id);
        repository_call!(self, Read, find_oidc_consent, msg)
    }
    async fn save_consent(&self, consent: Consent, audit: Vec<AuditEvent>) -> Result<()> {
        let msg = pb::ConsentWrite::new(consent, audit);
        repository_call!(self, Write, save_oidc_consent, msg)
    }
    async fn end_sso_session(&self, end: SessionEnd) -> Result<u64> {
        repository_call!(self, Write, end_sso_session, pb::SessionEnd::from(end))
    }
    async fn create_service_account(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<()> {
        let msg = pb::ServiceAccountWrite::new(account, audit);
        repository_call!(self, Write, create_service_account, msg)
    }
    async fn find_service_account(&self, id: Uuid) -> Result<Option<StoredServiceAccount>> {
        repository_call!(self, Read, find_service_account, pb::IdRequest::new(id))
    }
    async fn list_service_accounts(&self) -> Result<Vec<StoredServiceAccount>> {
        repository_call!(self, Read, list_service_accounts, pb::Empty {})
    }
    async fn rotate_service_account_secret(
        &self,
        account: StoredServiceAccount,
        audit: Vec<AuditEvent>,
    ) -> Result<bool> {
        let msg = pb::ServiceAccountWrite::new(account, audit);
        repository_call!(self, Write, rotate_service_account_secret, msg)
    }
    async fn delete_service_account(&self, id: Uuid, audit: Vec<AuditEvent>) -> Result<bool> {
        let msg = pb::ServiceAccountDeletion::new(id, audit);
        repository_call!(self, Write, delete_service_account, msg)
    }
}

#[async_trait]
impl MfaRepository for RepositoryClient {
    async fn find_factors(&self, user_id: UserId) -> Result<MfaFactors> {
        repository_call!(self, Read, find_mfa_factors, pb::IdRequest::new(user_id))
    }
    async fn begin_totp(&self, enrolment: TotpEnrolment) -> Result<()> {
        repository_call!(self, Write, begin_totp, pb::TotpEnrolment::from(enrolment))
    }
    async fn confirm_totp(&self, confirmation: TotpConfirmation) -> Result<bool> {
        let msg = pb::TotpConfirmation::from(confirmation);
        repository_call!(self, Write, confirm_totp, msg)
    }
    async fn use_totp_step(&self, user_id: UserId, step: i64) -> Result<bool> {
        let msg = pb::TotpStepRequest::new(user_id, step);
        repository_call!(self, Write, use_totp_step, msg)
    }
    async fn replace_recovery_codes(&self, set: RecoveryCodeSet) -> Result<bool> {
        let msg = pb::RecoveryCodeSet::from(set);
        repository_call!(self, Write, replace_recovery_codes, msg)
    }
    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let msg = pb::RecoveryCodeUse::new(user_id, code_hash.to_owned(), now);
        repository_call!(self, Write, use_recovery_code, msg)
    }
    async fn remove_factors(&self, removal: FactorRemoval) -> Result<bool> {
        let msg = pb::FactorRemoval::from(removal);
        repository_call!(self, Write, remove_mfa_factors, msg)
    }
    async fn create_mfa_challenge(&self, challenge: MfaChallenge) -> Result<()> {
        let msg = pb::MfaChallenge::from(challenge);
        repository_call!(self, Write, create_mfa_challenge, msg)
    }
    async fn find_mfa_challenge(&self, token_hash: &str) -> Result<Option<MfaChallenge>> {
        let msg = pb::FindMfaChallengeRequest::new(token_hash.to_owned());
        repository_call!(self, Read, find_mfa_challenge, msg)
    }
    async fn spend_mfa_challenge(&self, token_hash: &str, now: Timestamp) -> Result<bool> {
        let msg = pb::SpendMfaChallengeRequest::new(token_hash.to_owned(), now);
        repository_call!(self, Write, spend_mfa_challenge, msg)
    }
    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<StoredPasskey>> {
        repository_call!(self, Read, list_passkeys, pb::IdRequest::new(user_id))
    }
    async fn find_passkey(&self, credential_id: &str) -> Result<Option<StoredPasskey>> {
        let msg = pb::FindPasskeyRequest::new(credential_id.to_owned());
        repository_call!(self, Read, find_passkey, msg)
    }
    async fn add_passkey(&self, passkey: StoredPasskey, change: PasskeyChange) -> Result<()> {
        let msg = pb::AddPasskeyRequest::new(passkey, change);
        repository_call!(self, Write, add_passkey, msg)
    }
    async fn rename_passkey(&self, id: Uuid, name: &str, change: PasskeyChange) -> Result<bool> {
        let msg = pb::RenamePasskeyRequest::new(id, name.to_owned(), change);
        repository_call!(self, Write, rename_passkey, msg)
    }
    async fn delete_passkey(&self, id: Uuid, change: PasskeyChange) -> Result<bool> {
        let msg = pb::DeletePasskeyRequest::new(id, change);
        repository_call!(self, Write, delete_passkey, msg)
    }
    async fn record_passkey_use(
        &self,
        id: Uuid,
        credential: String,
        now: Timestamp,
    ) -> Result<bool> {
        let msg = pb::PasskeyUse::new(id, credential, now);
        repository_call!(self, Write, record_passkey_use, msg)
    }
    async fn create_ceremony(&self, ceremony: WebauthnCeremony) -> Result<()> {
        let msg = pb::WebauthnCeremony::from(ceremony);
        repository_call!(self, Write, create_ceremony, msg)
    }
    async fn take_ceremony(
        &self,
        id: Uuid,
        kind: CeremonyKind,
        now: Timestamp,
    ) -> Result<Option<WebauthnCeremony>> {
        let msg = pb::TakeCeremonyRequest::new(id, kind, now);
        repository_call!(self, Write, take_ceremony, msg)
    }
}

#[async_trait]
impl AccessTokenRepository for RepositoryClient {
    async fn create_access_token(
        &self,
        token: StoredAccessToken,
        audit: Vec<AuditEvent>,
        mail: Option<OutgoingMail>,
    ) -> Result<()> {
        let msg = pb::CreateAccessTokenRequest::new(token, audit, mail);
        repository_call!(self, Write, create_access_token, msg)
    }
    async fn list_access_tokens(
        &self,
        user_id: UserId,
        now: Timestamp,
    ) -> Result<Vec<StoredAccessToken>> {
        repository_call!(
            self,
            Read,
            list_access_tokens,
            pb::AtRequest::new(user_id, now)
        )
    }
    async fn find_access_token(&self, token_hash: &str) -> Result<Option<AccessTokenOwner>> {
        let msg = pb::FindAccessTokenRequest::new(token_hash.to_owned());
        repository_call!(self, Read, find_access_token, msg)
    }
    async fn revoke_access_token(
        &self,
        user_id: UserId,
        id: Uuid,
        audit: Vec<AuditEvent>,
        now: Timestamp,
    ) -> Result<bool> {
        let msg = pb::RevokeAccessTokenRequest::new(user_id, id, audit, now);
        repository_call!(self, Write, revoke_access_token, msg)
    }
    async fn touch_access_token(&self, id: Uuid, now: Timestamp) -> Result<()> {
        repository_call!(self, Write, touch_access_token, pb::AtRequest::new(id, now))
    }
}

#[async_trait]
impl WebhookRepository for RepositoryClient {
    async fn create_webhook(&self, webhook: StoredWebhook, audit: Vec<AuditEvent>) -> Result<()> {
        let msg = pb::WebhookCreation::new(webhook, audit);
        repository_call!(self, Write, create_webhook, msg)
    }
    async fn find_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>> {
        repository_call!(self, Read, find_webhook, pb::IdRequest::new(id))
    }
    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>> {
        repository_call!(self, Read, list_webhooks, pb::Empty {})
    }
    async fn update_webhook(&self, webhook: Webhook, audit: Vec<AuditEvent>) -> Result<bool> {
        let msg = pb::WebhookWrite::new(webhook, audit);
        repository_call!(self, Write, update_webhook, msg)
    }
    async fn delete_webhook(&self, id: Uuid, audit: Vec<AuditEvent>) -> Result<bool> {
        let msg = pb::WebhookDeletion::new(id, audit);
        repository_call!(self, Write, delete_webhook, msg)
    }
    async fn list_deliveries(
        &self,
        webhook_id: Uuid,
        query: DeliveryQuery,
    ) -> Result<DeliveryPage> {
        let msg = pb::DeliveryListRequest::of(webhook_id, query);
        repository_call!(self, Read, list_deliveries, msg)
    }
    async fn retry_delivery(
        &self,
        webhook_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: Vec<AuditEvent>,
    ) -> Result<Option<WebhookDelivery>> {
        let msg = pb::DeliveryRetryRequest::new(webhook_id, id, now, audit);
        repository_call!(self, Write, retry_delivery, msg)
    }
    async fn queue_test_delivery(&self, test: TestDelivery) -> Result<Option<QueuedDelivery>> {
        repository_call!(
            self,
            Write,
            queue_test_delivery,
            pb::TestDelivery::from(test)
        )
    }
    async fn find_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<WebhookDelivery>> {
        let msg = pb::DeliveryIdRequest::new(webhook_id, id);
        repository_call!(self, Read, find_delivery, msg)
    }
    async fn claim_deliveries(&self, claim: DeliveryClaim) -> Result<Vec<QueuedDelivery>> {
        repository_call!(
            self,
            Write,
            claim_deliveries,
            pb::DeliveryClaim::from(claim)
        )
    }
    async fn settle_delivery(&self, settlement: DeliverySettlement) -> Result<bool> {
        let msg = pb::DeliverySettlement::from(settlement);
        repository_call!(self, Write, settle_delivery, msg)
    }
    async fn purge_deliveries(&self, before: Timestamp) -> Result<u64> {
        repository_call!(self, Write, purge_deliveries, pb::PurgeRequest::new(before))
    }
}
