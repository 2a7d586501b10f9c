//! Server adapter: `RepositoryService` over the repository ports.
use std::fmt;
use std::future::Future;

use domain::{
    AuditEvent, AuditQuery, NewSession, NewUser, PasswordChange, Repositories, Result, UserQuery,
};
use tonic::{Request, Response, Status};

use crate::context;
use crate::credential::InternalCredential;
use crate::internal as pb;
use crate::internal::repository_service_rpcs;
use crate::internal::repository_service_server::RepositoryService;
use crate::raw::RawServer;

/// The repository ports, served over gRPC. Generic over the implementations: the
/// repository binary passes its `Database`, tests may pass anything that keeps the contract.
#[derive(Clone)]
pub struct RepositoryGrpc {
    ports: Repositories,
}

impl fmt::Debug for RepositoryGrpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryGrpc").finish_non_exhaustive()
    }
}

/// `RepositoryService` over the given ports, refusing every call that does not carry
/// `credential` (`UNAUTHENTICATED`, before any handler runs). Add it to a
/// `rpc::server::GrpcRouter` next to health and reflection.
pub fn server(ports: Repositories, credential: InternalCredential) -> RawServer {
    repository_service_rpcs::server(RepositoryGrpc { ports }).internal(&credential)
}

type Answer<T> = std::result::Result<Response<T>, Status>;

/// One call: the message decoded by `f`, the domain answer encoded (see
/// [`crate::server::answer`]).
async fn handle<Req, R, W, Fut>(
    rpc: &'static str,
    req: Request<Req>,
    f: impl FnOnce(Req) -> Fut + Send,
) -> Answer<W>
where
    Fut: Future<Output = Result<R>> + Send,
    W: From<R> + Send,
    Req: Send,
{
    let request_id = context::from_metadata(req.metadata());
    let parent = crate::trace::Parent::of(req.metadata().as_ref());
    let msg = req.into_inner();
    crate::server::answer(
        rpc,
        request_id,
        parent,
        async move { f(msg).await.map(W::from) },
    )
    .await
}

#[tonic::async_trait]
impl RepositoryService for RepositoryGrpc {
    async fn ping(&self, req: Request<pb::Empty>) -> Answer<pb::Empty> {
        handle("Ping", req, |_| self.ports.users.ping()).await
    }
    async fn create_account(
        &self,
        req: Request<pb::CreateAccountRequest>,
    ) -> Answer<crate::v1::User> {
        handle("CreateAccount", req, |m| async move {
            let (user, audit) = m.parse()?;
            self.ports.users.create_user(user, audit).await
        })
        .await
    }
    async fn create_user(&self, req: Request<pb::NewUser>) -> Answer<crate::v1::User> {
        handle("CreateUser", req, |m| async move {
            self.ports.users.create(NewUser::try_from(m)?).await
        })
        .await
    }
    async fn find_user_by_id(&self, req: Request<pb::IdRequest>) -> Answer<pb::OptionalUser> {
        handle("FindUserById", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.users.find_by_id(id).await
        })
        .await
    }
    async fn find_credentials(
        &self,
        req: Request<pb::FindCredentialsRequest>,
    ) -> Answer<pb::OptionalCredentials> {
        handle("FindCredentials", req, |m| async move {
            self.ports.users.find_credentials(&m.login).await
        })
        .await
    }
    async fn find_credentials_by_id(
        &self,
        req: Request<pb::IdRequest>,
    ) -> Answer<pb::OptionalCredentials> {
        handle("FindCredentialsById", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.users.find_credentials_by_id(id).await
        })
        .await
    }
    async fn list_users(
        &self,
        req: Request<pb::UserQuery>,
    ) -> Answer<crate::v1::ListUsersResponse> {
        handle("ListUsers", req, |m| async move {
            self.ports.users.list(&UserQuery::try_from(m)?).await
        })
        .await
    }
    async fn change_user(&self, req: Request<pb::UserChange>) -> Answer<pb::OptionalUser> {
        handle("ChangeUser", req, |m| async move {
            self.ports.users.change_user(m.try_into()?).await
        })
        .await
    }
    async fn delete_user(&self, req: Request<pb::UserDeletion>) -> Answer<pb::BoolResponse> {
        handle("DeleteUser", req, |m| async move {
            self.ports.users.delete_user(m.try_into()?).await
        })
        .await
    }
    async fn begin_login(&self, req: Request<pb::LoginStart>) -> Answer<pb::OptionalLoginBegun> {
        handle("BeginLogin", req, |m| async move {
            self.ports.users.begin_login(m.try_into()?).await
        })
        .await
    }
    async fn complete_login(&self, req: Request<pb::LoginCompletion>) -> Answer<pb::Empty> {
        handle("CompleteLogin", req, |m| async move {
            self.ports.users.complete_login(m.try_into()?).await
        })
        .await
    }
    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Answer<pb::OptionalUser> {
        handle("UpdateUser", req, |m| async move {
            let (id, update, now) = m.parse()?;
            self.ports.users.update(id, update, now).await
        })
        .await
    }
    async fn soft_delete_user(&self, req: Request<pb::AtRequest>) -> Answer<pb::BoolResponse> {
        handle("SoftDeleteUser", req, |m| async move {
            let (id, now) = m.parse()?;
            self.ports.users.soft_delete(id, now).await
        })
        .await
    }
    async fn reserve_login_attempt(
        &self,
        req: Request<pb::AttemptReservation>,
    ) -> Answer<pb::LoginAttemptResponse> {
        handle("ReserveLoginAttempt", req, |m| async move {
            self.ports.users.reserve_login_attempt(m.try_into()?).await
        })
        .await
    }
    async fn record_login_success(&self, req: Request<pb::LoginSuccess>) -> Answer<pb::Empty> {
        handle("RecordLoginSuccess", req, |m| async move {
            self.ports.users.record_login_success(m.try_into()?).await
        })
        .await
    }
    async fn change_password(&self, req: Request<pb::PasswordChange>) -> Answer<pb::OptionalCount> {
        handle("ChangePassword", req, |m| async move {
            self.ports
                .users
                .change_password(PasswordChange::try_from(m)?)
                .await
        })
        .await
    }
    async fn count_active_admins(&self, req: Request<pb::Empty>) -> Answer<pb::CountResponse> {
        handle("CountActiveAdmins", req, |_| {
            self.ports.users.count_active_admins()
        })
        .await
    }
    async fn create_session(&self, req: Request<pb::NewSession>) -> Answer<pb::Session> {
        handle("CreateSession", req, |m| async move {
            self.ports.sessions.create(NewSession::try_from(m)?).await
        })
        .await
    }
    async fn find_session(&self, req: Request<pb::IdRequest>) -> Answer<pb::OptionalSession> {
        handle("FindSession", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.sessions.find(id).await
        })
        .await
    }
    async fn find_session_with_owner(
        &self,
        req: Request<pb::IdRequest>,
    ) -> Answer<pb::OptionalSessionOwner> {
        handle("FindSessionWithOwner", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.sessions.find_with_owner(id).await
        })
        .await
    }
    async fn rotate_live_session(
        &self,
        req: Request<pb::Rotation>,
    ) -> Answer<pb::OptionalSessionOwner> {
        handle("RotateLiveSession", req, |m| async move {
            self.ports.sessions.rotate(m.try_into()?).await
        })
        .await
    }
    async fn rotate_session(&self, req: Request<pb::Rotation>) -> Answer<pb::BoolResponse> {
        handle("RotateSession", req, |m| async move {
            Ok(self.ports.sessions.rotate(m.try_into()?).await?.is_some())
        })
        .await
    }
    async fn end_session(&self, req: Request<pb::SessionEnd>) -> Answer<pb::BoolResponse> {
        handle("EndSession", req, |m| async move {
            self.ports.sessions.end_session(m.try_into()?).await
        })
        .await
    }
    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("RevokeSession", req, |m| async move {
            let (id, reason, now) = m.parse()?;
            self.ports.sessions.revoke(id, reason, now).await
        })
        .await
    }
    async fn revoke_all_sessions(
        &self,
        req: Request<pb::UserRevocation>,
    ) -> Answer<pb::CountResponse> {
        handle("RevokeAllSessions", req, |m| async move {
            self.ports.sessions.revoke_all_for_user(m.try_into()?).await
        })
        .await
    }
    async fn list_live_sessions(&self, req: Request<pb::AtRequest>) -> Answer<pb::SessionList> {
        handle("ListLiveSessions", req, |m| async move {
            let (user_id, now) = m.parse()?;
            self.ports.sessions.list_live_for_user(user_id, now).await
        })
        .await
    }
    async fn record_audit_events(&self, req: Request<pb::AuditEvents>) -> Answer<pb::Empty> {
        handle("RecordAuditEvents", req, |m| async move {
            self.ports.audit.record_all(m.try_into()?).await
        })
        .await
    }
    async fn record_audit(&self, req: Request<crate::v1::AuditEvent>) -> Answer<pb::Empty> {
        handle("RecordAudit", req, |m| async move {
            self.ports.audit.record(AuditEvent::try_from(m)?).await
        })
        .await
    }
    async fn list_audit(
        &self,
        req: Request<pb::AuditQuery>,
    ) -> Answer<crate::v1::ListAuditEventsResponse> {
        handle("ListAudit", req, |m| async move {
            self.ports
                .audit
                .list_events(&AuditQuery::try_from(m)?)
                .await
        })
        .await
    }
    async fn issue_token(&self, req: Request<pb::TokenIssue>) -> Answer<pb::BoolResponse> {
        handle("IssueToken", req, |m| async move {
            self.ports.recovery.issue_token(m.try_into()?).await
        })
        .await
    }
    async fn redeem_token(&self, req: Request<pb::Redemption>) -> Answer<crate::v1::User> {
        handle("RedeemToken", req, |m| async move {
            self.ports.recovery.redeem_token(m.try_into()?).await
        })
        .await
    }
    async fn check_token(&self, req: Request<pb::Redemption>) -> Answer<pb::Empty> {
        handle("CheckToken", req, |m| async move {
            self.ports.recovery.check_token(m.try_into()?).await
        })
        .await
    }
    async fn reset_recipient(
        &self,
        req: Request<pb::ResetRecipientRequest>,
    ) -> Answer<pb::OptionalString> {
        handle("ResetRecipient", req, |m| async move {
            let (user_id, since) = m.parse()?;
            self.ports.recovery.reset_recipient(user_id, since).await
        })
        .await
    }
    async fn claim_mail(&self, req: Request<pb::MailClaim>) -> Answer<pb::MailList> {
        handle("ClaimMail", req, |m| async move {
            self.ports.recovery.claim_mail(m.try_into()?).await
        })
        .await
    }
    async fn settle_mail(&self, req: Request<pb::MailSettlement>) -> Answer<pb::BoolResponse> {
        handle("SettleMail", req, |m| async move {
            self.ports.recovery.settle_mail(m.try_into()?).await
        })
        .await
    }
    async fn outbox_stats(&self, req: Request<pb::Empty>) -> Answer<pb::OutboxStatsResponse> {
        handle("OutboxStats", req, |_| self.ports.recovery.outbox_stats()).await
    }
    async fn purge_recovery(&self, req: Request<pb::PurgeRequest>) -> Answer<pb::CountResponse> {
        handle("PurgeRecovery", req, |m| async move {
            let (before,) = m.parse()?;
            self.ports.recovery.purge_recovery(before).await
        })
        .await
    }
    async fn try_lease(&self, req: Request<pb::LeaseRequest>) -> Answer<pb::BoolResponse> {
        handle("TryLease", req, |m| async move {
            let (name, holder, now, until) = m.parse()?;
            self.ports
                .maintenance
                .try_lease(&name, &holder, now, until)
                .await
        })
        .await
    }
    async fn purge_sessions(&self, req: Request<pb::PurgeBatch>) -> Answer<pb::CountResponse> {
        handle("PurgeSessions", req, |m| async move {
            let (before, limit) = m.parse()?;
            self.ports.maintenance.purge_sessions(before, limit).await
        })
        .await
    }
    async fn purge_audit(&self, req: Request<pb::PurgeBatch>) -> Answer<pb::CountResponse> {
        handle("PurgeAudit", req, |m| async move {
            let (before, limit) = m.parse()?;
            self.ports.maintenance.purge_audit(before, limit).await
        })
        .await
    }

    async fn create_oidc_client(&self, req: Request<pb::OidcClientWrite>) -> Answer<pb::Empty> {
        handle("CreateOidcClient", req, |m| async move {
            let (client, audit) = m.parse()?;
            self.ports.oidc.create_client(client, audit).await
        })
        .await
    }
    async fn find_oidc_client(
        &self,
        req: Request<pb::IdRequest>,
    ) -> Answer<pb::OptionalStoredClient> {
        handle("FindOidcClient", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.oidc.find_client(id).await
        })
        .await
    }
    async fn list_oidc_clients(
        &self,
        req: Request<pb::ClientQuery>,
    ) -> Answer<crate::v1::ListClientsResponse> {
        handle("ListOidcClients", req, |m| async move {
            self.ports.oidc.list_clients(&m.try_into()?).await
        })
        .await
    }
    async fn update_oidc_client(
        &self,
        req: Request<pb::OidcClientWrite>,
    ) -> Answer<pb::BoolResponse> {
        handle("UpdateOidcClient", req, |m| async move {
            let (client, audit) = m.parse()?;
            self.ports.oidc.update_client(client, audit).await
        })
        .await
    }
    async fn delete_oidc_client(
        &self,
        req: Request<pb::OidcClientDeletion>,
    ) -> Answer<pb::BoolResponse> {
        handle("DeleteOidcClient", req, |m| async move {
            let (id, audit, now) = m.parse()?;
            self.ports.oidc.delete_client(id, audit, now).await
        })
        .await
    }
    async fn create_oidc_code(&self, req: Request<pb::OidcCode>) -> Answer<pb::Empty> {
        handle("CreateOidcCode", req, |m| async move {
            self.ports.oidc.create_code(m.try_into()?).await
        })
        .await
    }
    async fn find_oidc_code(
        &self,
        req: Request<pb::FindOidcCodeRequest>,
    ) -> Answer<pb::OptionalStoredCode> {
        handle("FindOidcCode", req, |m| async move {
            let (hash,) = m.parse()?;
            self.ports.oidc.find_code(&hash).await
        })
        .await
    }
    async fn redeem_oidc_code(
        &self,
        req: Request<pb::CodeRedemption>,
    ) -> Answer<pb::RedeemedResponse> {
        handle("RedeemOidcCode", req, |m| async move {
            self.ports.oidc.redeem_code(m.try_into()?).await
        })
        .await
    }
    async fn find_oidc_grant(&self, req: Request<pb::IdRequest>) -> Answer<pb::OptionalGrant> {
        handle("FindOidcGrant", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.oidc.find_grant(id).await
        })
        .await
    }
    async fn find_oidc_consent(&self, req: Request<pb::ConsentKey>) -> Answer<pb::OptionalConsent> {
        handle("FindOidcConsent", req, |m| async move {
            let (user, client) = m.parse()?;
            self.ports.oidc.find_consent(user, client).await
        })
        .await
    }
    async fn save_oidc_consent(&self, req: Request<pb::ConsentWrite>) -> Answer<pb::Empty> {
        handle("SaveOidcConsent", req, |m| async move {
            let (consent, audit) = m.parse()?;
            self.ports.oidc.save_consent(consent, audit).await
        })
        .await
    }
    async fn end_sso_session(&self, req: Request<pb::SessionEnd>) -> Answer<pb::CountResponse> {
        handle("EndSsoSession", req, |m| async move {
            self.ports.oidc.end_sso_session(m.try_into()?).await
        })
        .await
    }

    async fn find_mfa_factors(&self, req: Request<pb::IdRequest>) -> Answer<pb::MfaFactors> {
        handle("FindMfaFactors", req, |m| async move {
            let (user_id,) = m.parse()?;
            self.ports.mfa.find_factors(user_id).await
        })
        .await
    }
    async fn begin_totp(&self, req: Request<pb::TotpEnrolment>) -> Answer<pb::Empty> {
        handle("BeginTotp", req, |m| async move {
            self.ports.mfa.begin_totp(m.try_into()?).await
        })
        .await
    }
    async fn confirm_totp(&self, req: Request<pb::TotpConfirmation>) -> Answer<pb::BoolResponse> {
        handle("ConfirmTotp", req, |m| async move {
            self.ports.mfa.confirm_totp(m.try_into()?).await
        })
        .await
    }
    async fn use_totp_step(&self, req: Request<pb::TotpStepRequest>) -> Answer<pb::BoolResponse> {
        handle("UseTotpStep", req, |m| async move {
            let (user_id, step) = m.parse()?;
            self.ports.mfa.use_totp_step(user_id, step).await
        })
        .await
    }
    async fn replace_recovery_codes(
        &self,
        req: Request<pb::RecoveryCodeSet>,
    ) -> Answer<pb::BoolResponse> {
        handle("ReplaceRecoveryCodes", req, |m| async move {
            self.ports.mfa.replace_recovery_codes(m.try_into()?).await
        })
        .await
    }
    async fn use_recovery_code(
        &self,
        req: Request<pb::RecoveryCodeUse>,
    ) -> Answer<pb::BoolResponse> {
        handle("UseRecoveryCode", req, |m| async move {
            let (user_id, code_hash, at) = m.parse()?;
            self.ports
                .mfa
                .use_recovery_code(user_id, &code_hash, at)
                .await
        })
        .await
    }
    async fn remove_mfa_factors(
        &self,
        req: Request<pb::FactorRemoval>,
    ) -> Answer<pb::BoolResponse> {
        handle("RemoveMfaFactors", req, |m| async move {
            self.ports.mfa.remove_factors(m.try_into()?).await
        })
        .await
    }
    async fn create_mfa_challenge(&self, req: Request<pb::MfaChallenge>) -> Answer<pb::Empty> {
        handle("CreateMfaChallenge", req, |m| async move {
            self.ports.mfa.create_mfa_challenge(m.try_into()?).await
        })
        .await
    }
    async fn find_mfa_challenge(
        &self,
        req: Request<pb::FindMfaChallengeRequest>,
    ) -> Answer<pb::OptionalMfaChallenge> {
        handle("FindMfaChallenge", req, |m| async move {
            let (hash,) = m.parse()?;
            self.ports.mfa.find_mfa_challenge(&hash).await
        })
        .await
    }
    async fn spend_mfa_challenge(
        &self,
        req: Request<pb::SpendMfaChallengeRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("SpendMfaChallenge", req, |m| async move {
            let (hash, at) = m.parse()?;
            self.ports.mfa.spend_mfa_challenge(&hash, at).await
        })
        .await
    }
    async fn list_passkeys(&self, req: Request<pb::IdRequest>) -> Answer<pb::PasskeyList> {
        handle("ListPasskeys", req, |m| async move {
            let (user_id,) = m.parse()?;
            self.ports.mfa.list_passkeys(user_id).await
        })
        .await
    }
    async fn find_passkey(
        &self,
        req: Request<pb::FindPasskeyRequest>,
    ) -> Answer<pb::OptionalPasskey> {
        handle("FindPasskey", req, |m| async move {
            let (credential_id,) = m.parse()?;
            self.ports.mfa.find_passkey(&credential_id).await
        })
        .await
    }
    async fn add_passkey(&self, req: Request<pb::AddPasskeyRequest>) -> Answer<pb::Empty> {
        handle("AddPasskey", req, |m| async move {
            let (passkey, change) = m.parse()?;
            self.ports.mfa.add_passkey(passkey, change).await
        })
        .await
    }
    async fn rename_passkey(
        &self,
        req: Request<pb::RenamePasskeyRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("RenamePasskey", req, |m| async move {
            let (id, name, change) = m.parse()?;
            self.ports.mfa.rename_passkey(id, &name, change).await
        })
        .await
    }
    async fn delete_passkey(
        &self,
        req: Request<pb::DeletePasskeyRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("DeletePasskey", req, |m| async move {
            let (id, change) = m.parse()?;
            self.ports.mfa.delete_passkey(id, change).await
        })
        .await
    }
    async fn record_passkey_use(&self, req: Request<pb::PasskeyUse>) -> Answer<pb::BoolResponse> {
        handle("RecordPasskeyUse", req, |m| async move {
            let (id, credential, at) = m.parse()?;
            self.ports.mfa.record_passkey_use(id, credential, at).await
        })
        .await
    }
    async fn create_ceremony(&self, req: Request<pb::WebauthnCeremony>) -> Answer<pb::Empty> {
        handle("CreateCeremony", req, |m| async move {
            self.ports.mfa.create_ceremony(m.try_into()?).await
        })
        .await
    }
    async fn take_ceremony(
        &self,
        req: Request<pb::TakeCeremonyRequest>,
    ) -> Answer<pb::OptionalCeremony> {
        handle("TakeCeremony", req, |m| async move {
            let (id, kind, at) = m.parse()?;
            self.ports.mfa.take_ceremony(id, kind, at).await
        })
        .await
    }

    async fn create_access_token(
        &self,
        req: Request<pb::CreateAccessTokenRequest>,
    ) -> Answer<pb::Empty> {
        handle("CreateAccessToken", req, |m| async move {
            let (token, audit, mail) = m.parse()?;
            self.ports
                .tokens
                .create_access_token(token, audit, mail)
                .await
        })
        .await
    }
    async fn list_access_tokens(&self, req: Request<pb::AtRequest>) -> Answer<pb::AccessTokenList> {
        handle("ListAccessTokens", req, |m| async move {
            let (user_id, now) = m.parse()?;
            self.ports.tokens.list_access_tokens(user_id, now).await
        })
        .await
    }
    async fn find_access_token(
        &self,
        req: Request<pb::FindAccessTokenRequest>,
    ) -> Answer<pb::OptionalAccessTokenOwner> {
        handle("FindAccessToken", req, |m| async move {
            let (token_hash,) = m.parse()?;
            self.ports.tokens.find_access_token(&token_hash).await
        })
        .await
    }
    async fn revoke_access_token(
        &self,
        req: Request<pb::RevokeAccessTokenRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("RevokeAccessToken", req, |m| async move {
            let (user_id, id, audit, now) = m.parse()?;
            self.ports
                .tokens
                .revoke_access_token(user_id, id, audit, now)
                .await
        })
        .await
    }
    async fn touch_access_token(&self, req: Request<pb::AtRequest>) -> Answer<pb::Empty> {
        handle("TouchAccessToken", req, |m| async move {
            let (id, now) = m.parse()?;
            self.ports.tokens.touch_access_token(id, now).await
        })
        .await
    }

    async fn create_service_account(
        &self,
        req: Request<pb::ServiceAccountWrite>,
    ) -> Answer<pb::Empty> {
        handle("CreateServiceAccount", req, |m| async move {
            let (account, audit) = m.parse()?;
            self.ports.oidc.create_service_account(account, audit).await
        })
        .await
    }
    async fn find_service_account(
        &self,
        req: Request<pb::IdRequest>,
    ) -> Answer<pb::OptionalServiceAccount> {
        handle("FindServiceAccount", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.oidc.find_service_account(id).await
        })
        .await
    }
    async fn list_service_accounts(
        &self,
        req: Request<pb::Empty>,
    ) -> Answer<pb::ServiceAccountList> {
        handle("ListServiceAccounts", req, |_| async move {
            self.ports.oidc.list_service_accounts().await
        })
        .await
    }
    async fn rotate_service_account_secret(
        &self,
        req: Request<pb::ServiceAccountWrite>,
    ) -> Answer<pb::BoolResponse> {
        handle("RotateServiceAccountSecret", req, |m| async move {
            let (account, audit) = m.parse()?;
            self.ports
                .oidc
                .rotate_service_account_secret(account, audit)
                .await
        })
        .await
    }
    async fn delete_service_account(
        &self,
        req: Request<pb::ServiceAccountDeletion>,
    ) -> Answer<pb::BoolResponse> {
        handle("DeleteServiceAccount", req, |m| async move {
            let (id, audit) = m.parse()?;
            self.ports.oidc.delete_service_account(id, audit).await
        })
        .await
    }

    async fn create_webhook(&self, req: Request<pb::WebhookCreation>) -> Answer<pb::Empty> {
        handle("CreateWebhook", req, |m| async move {
            let (webhook, audit) = m.parse()?;
            self.ports.webhooks.create_webhook(webhook, audit).await
        })
        .await
    }
    async fn find_webhook(&self, req: Request<pb::IdRequest>) -> Answer<pb::OptionalStoredWebhook> {
        handle("FindWebhook", req, |m| async move {
            let (id,) = m.parse()?;
            self.ports.webhooks.find_webhook(id).await
        })
        .await
    }
    async fn list_webhooks(&self, req: Request<pb::Empty>) -> Answer<pb::StoredWebhookList> {
        handle("ListWebhooks", req, |_| async move {
            self.ports.webhooks.list_webhooks().await
        })
        .await
    }
    async fn update_webhook(&self, req: Request<pb::WebhookWrite>) -> Answer<pb::BoolResponse> {
        handle("UpdateWebhook", req, |m| async move {
            let (webhook, audit) = m.parse()?;
            self.ports.webhooks.update_webhook(webhook, audit).await
        })
        .await
    }
    async fn delete_webhook(&self, req: Request<pb::WebhookDeletion>) -> Answer<pb::BoolResponse> {
        handle("DeleteWebhook", req, |m| async move {
            let (id, audit) = m.parse()?;
            self.ports.webhooks.delete_webhook(id, audit).await
        })
        .await
    }
    async fn list_deliveries(
        &self,
        req: Request<pb::DeliveryListRequest>,
    ) -> Answer<crate::v1::ListWebhookDeliveriesResponse> {
        handle("ListDeliveries", req, |m| async move {
            let (id, query) = m.query()?;
            self.ports.webhooks.list_deliveries(id, query).await
        })
        .await
    }
    async fn retry_delivery(
        &self,
        req: Request<pb::DeliveryRetryRequest>,
    ) -> Answer<pb::OptionalDelivery> {
        handle("RetryDelivery", req, |m| async move {
            let (webhook_id, id, now, audit) = m.parse()?;
            self.ports
                .webhooks
                .retry_delivery(webhook_id, id, now, audit)
                .await
        })
        .await
    }
    async fn queue_test_delivery(
        &self,
        req: Request<pb::TestDelivery>,
    ) -> Answer<pb::OptionalQueuedDelivery> {
        handle("QueueTestDelivery", req, |m| async move {
            self.ports.webhooks.queue_test_delivery(m.try_into()?).await
        })
        .await
    }
    async fn find_delivery(
        &self,
        req: Request<pb::DeliveryIdRequest>,
    ) -> Answer<pb::OptionalDelivery> {
        handle("FindDelivery", req, |m| async move {
            let (webhook_id, id) = m.parse()?;
            self.ports.webhooks.find_delivery(webhook_id, id).await
        })
        .await
    }
    async fn claim_deliveries(
        &self,
        req: Request<pb::DeliveryClaim>,
    ) -> Answer<pb::QueuedDeliveryList> {
        handle("ClaimDeliveries", req, |m| async move {
            self.ports.webhooks.claim_deliveries(m.try_into()?).await
        })
        .await
    }
    async fn settle_delivery(
        &self,
        req: Request<pb::DeliverySettlement>,
    ) -> Answer<pb::BoolResponse> {
        handle("SettleDelivery", req, |m| async move {
            self.ports.webhooks.settle_delivery(m.try_into()?).await
        })
        .await
    }
    async fn purge_deliveries(&self, req: Request<pb::PurgeRequest>) -> Answer<pb::CountResponse> {
        handle("PurgeDeliveries", req, |m| async move {
            let (before,) = m.parse()?;
            self.ports.webhooks.purge_deliveries(before).await
        })
        .await
    }
}
