//! Every wire shape round-trips to the same domain value, and wire data that does not fit the
//! domain is a validation error naming the field (never a panic).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::{
    AttemptReservation, AuditCursor, AuditEvent, AuditQuery, AuthSession, CreateUserInput, Cursor,
    CursorValue, Error, LockoutPolicy, LoginAttempt, LoginCompletion, LoginStart, LoginSuccess,
    NewSession, NewUser, PageInfo, PageRequest, PasswordChange, RawAuditQuery, RawUserQuery,
    Rehash, RevokeReason, Role, Rotation, Session, SessionEnd, SessionInfo, SessionOwner,
    SortOrder, Status, Timestamp, TokenPair, User, UserChange, UserCredentials, UserDeletion,
    UserPage, UserPatch, UserQuery, UserRevocation, UserSort, UserUpdate,
};
use rpc::convert::v1::{update_user_from_request, update_user_request};
use rpc::{internal as pb, v1};
use uuid::Uuid;

fn t(s: i64) -> Timestamp {
    Utc.timestamp_opt(1_700_000_000 + s, 123_456_789)
        .single()
        .unwrap()
}

fn fields(e: Error) -> Vec<String> {
    match e {
        Error::Validation(f) => f.0.keys().cloned().collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn user() -> User {
    User {
        id: Uuid::new_v4(),
        username: "ada".into(),
        email: "ada@example.com".into(),
        first_name: Some("Ada".into()),
        last_name: None,
        phone: Some("+1 555".into()),
        avatar_url: None,
        role: Role::Admin,
        status: Status::Suspended,
        is_verified: true,
        created_at: t(0),
        updated_at: t(1),
        last_login_at: None,
    }
}

fn session() -> Session {
    Session {
        id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        refresh_token_hash: "ab".repeat(32),
        previous_refresh_hash: Some("cd".repeat(32)),
        rotated_at: Some(t(40)),
        generation: 4,
        credential_version: 2,
        user_agent: Some("ua".into()),
        ip: None,
        created_at: t(0),
        last_used_at: t(1),
        expires_at: t(100),
        revoked_at: Some(t(50)),
        revoked_reason: Some("logout".into()),
        amr: vec!["pwd".into(), "otp".into()],
    }
}

/// `value` → wire → value is the identity.
fn round_trip<D, W>(value: D)
where
    D: Clone + PartialEq + std::fmt::Debug + TryFrom<W, Error = Error>,
    W: From<D>,
{
    assert_eq!(D::try_from(W::from(value.clone())).unwrap(), value);
}

#[test]
fn users_and_sessions_round_trip() {
    round_trip::<User, v1::User>(user());
    round_trip::<User, v1::User>(User {
        last_login_at: Some(t(9)),
        ..user()
    });
    let c = UserCredentials {
        user: user(),
        password_hash: "pbkdf2:sha256:1$s$h".into(),
        failed_login_count: 3,
        locked_until: Some(t(60)),
        credential_version: 7,
    };
    assert_eq!(
        Option::<UserCredentials>::try_from(pb::OptionalCredentials::from(Some(c.clone())))
            .unwrap(),
        Some(c)
    );
    round_trip::<NewUser, pb::NewUser>(NewUser {
        id: Uuid::new_v4(),
        username: "n".into(),
        email: "n@example.com".into(),
        password_hash: "h".into(),
        first_name: None,
        last_name: Some("L".into()),
        phone: None,
        avatar_url: Some("https://x".into()),
        role: Role::Guest,
        status: Status::Inactive,
        is_verified: false,
        created_at: t(3),
    });
    round_trip::<Session, pb::Session>(session());
    round_trip::<NewSession, pb::NewSession>(NewSession {
        id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        credential_version: 3,
        refresh_token_hash: "h".into(),
        user_agent: None,
        ip: Some("::1".into()),
        created_at: t(0),
        expires_at: t(9),
        max_live: 100,
        amr: vec!["pwd".into(), "hwk".into()],
    });
    let owner = SessionOwner {
        session: session(),
        user: user(),
        credential_version: 2,
    };
    assert_eq!(
        Option::<SessionOwner>::try_from(pb::OptionalSessionOwner::from(Some(owner.clone())))
            .unwrap(),
        Some(owner)
    );
    let list = vec![session(), session()];
    assert_eq!(
        Vec::<Session>::try_from(pb::SessionList::from(list.clone())).unwrap(),
        list
    );
    round_trip::<AuditEvent, v1::AuditEvent>(AuditEvent {
        id: Uuid::new_v4(),
        at: t(5),
        actor_id: Some(Uuid::new_v4()),
        subject_id: None,
        r#type: "auth.login".into(),
        outcome: "success".into(),
        ip: None,
        request_id: Some("r".into()),
        details: Some("{}".into()),
    });
    round_trip::<AuditQuery, pb::AuditQuery>(AuditQuery {
        user_id: Some(Uuid::new_v4()),
        r#type: Some("auth.login".into()),
        outcome: Some("failure".into()),
        since: Some(t(1)),
        until: Some(t(2)),
        after: Some(AuditCursor {
            at: 5,
            id: Uuid::new_v4(),
        }),
        per_page: 7,
    });
    round_trip::<AuditQuery, pb::AuditQuery>(AuditQuery::default());
    round_trip::<RawAuditQuery, v1::ListAuditEventsRequest>(RawAuditQuery {
        user_id: Some("u".into()),
        r#type: Some("t".into()),
        outcome: None,
        since: Some("s".into()),
        until: None,
        per_page: Some("3".into()),
        cursor: Some(String::new()),
    });
    let mut w = pb::AuditQuery::from(AuditQuery::default());
    w.after = Some("not-a-cursor".into());
    assert_eq!(fields(AuditQuery::try_from(w).unwrap_err()), ["after"]);
}

#[test]
fn bad_wire_values_name_the_field() {
    let mut w = v1::User::from(user());
    w.id = "nope".into();
    assert_eq!(fields(User::try_from(w).unwrap_err()), ["id"]);
    let mut w = v1::User::from(user());
    w.role = "root".into();
    assert_eq!(fields(User::try_from(w).unwrap_err()), ["role"]);
    let mut w = v1::User::from(user());
    w.created_at = None;
    assert_eq!(fields(User::try_from(w).unwrap_err()), ["created_at"]);
    let mut w = v1::User::from(user());
    w.updated_at = Some(prost_types::Timestamp {
        seconds: 0,
        nanos: -1,
    });
    assert_eq!(fields(User::try_from(w).unwrap_err()), ["updated_at"]);
    assert_eq!(
        fields(UserCredentials::try_from(pb::Credentials::default()).unwrap_err()),
        ["user"]
    );
    assert_eq!(
        fields(AuthSession::try_from(v1::AuthResponse::default()).unwrap_err()),
        ["user"]
    );
    let mut s = pb::Session::from(session());
    s.revoked_reason = Some("anything".into());
    assert!(Session::try_from(s).is_ok(), "the reason is free text");
    let r = pb::RevokeSessionRequest {
        id: Uuid::new_v4().to_string(),
        reason: "because".into(),
        now: None,
    };
    assert_eq!(fields(r.parse().unwrap_err()), ["reason"]);
}

#[test]
fn call_arguments_round_trip() {
    let (id, now) = (Uuid::new_v4(), t(7));
    assert_eq!(pb::AtRequest::new(id, now).parse().unwrap(), (id, now));
    let update = UserUpdate {
        email: Some("e@example.com".into()),
        first_name: Some(None),
        last_name: Some(Some("L".into())),
        role: Some(Role::User),
        status: Some(Status::Active),
        is_verified: Some(false),
        password_hash: Some("h".into()),
        ..UserUpdate::default()
    };
    let (i, u, n) = pb::UpdateUserRequest::new(id, update.clone(), now)
        .parse()
        .unwrap();
    assert_eq!((i, n), (id, now));
    assert!(u == update, "the update survives, clears included");
    let policy = LockoutPolicy {
        max_failures: 5,
        base_lock: Duration::from_secs(30),
        max_lock: Duration::from_secs(900),
    };
    let reservation = AttemptReservation {
        user_id: id,
        network: "2001:db8:1:2::/64".into(),
        policy,
        now,
    };
    let back =
        AttemptReservation::try_from(pb::AttemptReservation::from(reservation.clone())).unwrap();
    assert_eq!(back, reservation);
    let rehash = Rehash {
        verified_hash: "old".into(),
        new_hash: "new".into(),
    };
    let success = LoginSuccess {
        user_id: id,
        network: "203.0.113.0/24".into(),
        attempt: 3,
        rehash: Some(rehash),
        now,
    };
    let back = LoginSuccess::try_from(pb::LoginSuccess::from(success.clone())).unwrap();
    assert_eq!(back, success);
    let rotation = Rotation {
        id,
        expected_hash: "a".repeat(64),
        new_hash: "b".repeat(64),
        now,
    };
    let back = Rotation::try_from(pb::Rotation::from(rotation.clone())).unwrap();
    assert!(back == rotation);
    let keep = Some(Uuid::new_v4());
    let revocation = UserRevocation {
        audit: Vec::new(),
        user_id: id,
        reason: RevokeReason::RoleChanged,
        now,
        keep,
    };
    let back = UserRevocation::try_from(pb::UserRevocation::from(revocation.clone())).unwrap();
    assert_eq!(back, revocation);
    // The use-case commands, each with its audit events.
    let audit = vec![event(id, now), event(id, now)];
    let cmd = UserChange {
        id,
        update: update.clone(),
        revoke: Some(RevokeReason::StatusChanged),
        audit: audit.clone(),
        now,
    };
    assert!(UserChange::try_from(pb::UserChange::from(cmd.clone())).unwrap() == cmd);
    let cmd = UserDeletion {
        id,
        audit: audit.clone(),
        now,
    };
    assert_eq!(
        UserDeletion::try_from(pb::UserDeletion::from(cmd.clone())).unwrap(),
        cmd
    );
    let cmd = LoginStart {
        login: "Ann@Example.com".into(),
        network: "203.0.113.0/24".into(),
        policy,
        now,
    };
    assert_eq!(
        LoginStart::try_from(pb::LoginStart::from(cmd.clone())).unwrap(),
        cmd
    );
    let cmd = LoginCompletion {
        success: success.clone(),
        session: Some(new_session(id, now)),
        audit: audit.clone(),
    };
    assert_eq!(
        LoginCompletion::try_from(pb::LoginCompletion::from(cmd.clone())).unwrap(),
        cmd
    );
    for user_id in [None, Some(id)] {
        let cmd = SessionEnd {
            id: Uuid::new_v4(),
            user_id,
            reason: RevokeReason::Logout,
            live_only: user_id.is_some(),
            audit: audit.clone(),
            now,
        };
        assert_eq!(
            SessionEnd::try_from(pb::SessionEnd::from(cmd.clone())).unwrap(),
            cmd
        );
    }
    let events = Vec::<AuditEvent>::try_from(pb::AuditEvents::from(audit.clone())).unwrap();
    assert_eq!(events, audit);
    let change = PasswordChange {
        audit: Vec::new(),
        user_id: id,
        new_hash: "new".into(),
        verified_hash: Some("old".into()),
        attempt: Some(2),
        attempt_network: "203.0.113.0/24".into(),
        keep_session: keep,
        now,
    };
    assert!(PasswordChange::try_from(pb::PasswordChange::from(change.clone())).unwrap() == change);
    for count in [None, Some(0), Some(3)] {
        assert_eq!(
            Option::<u64>::try_from(pb::OptionalCount::from(count)).unwrap(),
            count
        );
    }
}

fn event(subject: Uuid, at: domain::Timestamp) -> AuditEvent {
    AuditEvent {
        at,
        ..domain::testing::audit_event("user.updated", Some(subject), r#"{"sessions_revoked":0}"#)
    }
}

fn new_session(user_id: Uuid, now: domain::Timestamp) -> domain::NewSession {
    domain::NewSession {
        id: Uuid::new_v4(),
        user_id,
        credential_version: 2,
        refresh_token_hash: "c".repeat(64),
        user_agent: Some("curl".into()),
        ip: None,
        created_at: now,
        expires_at: now + chrono::Duration::days(30),
        max_live: 10,
        amr: vec!["pwd".into()],
    }
}

#[test]
fn login_attempts_round_trip() {
    for a in [
        LoginAttempt::Reserved {
            attempt: 2,
            locked_until: None,
            account_failures: 2,
            last_success: None,
        },
        LoginAttempt::Reserved {
            attempt: 5,
            locked_until: Some(t(30)),
            account_failures: 40,
            last_success: Some(t(10)),
        },
        LoginAttempt::Locked {
            locked_until: t(30),
        },
        LoginAttempt::UnknownUser,
    ] {
        round_trip::<LoginAttempt, pb::LoginAttemptResponse>(a);
    }
    assert_eq!(
        fields(LoginAttempt::try_from(pb::LoginAttemptResponse::default()).unwrap_err()),
        ["outcome"]
    );
    let locked_without_time = pb::LoginAttemptResponse {
        outcome: pb::login_attempt_response::Outcome::Locked.into(),
        ..Default::default()
    };
    assert_eq!(
        fields(LoginAttempt::try_from(locked_without_time).unwrap_err()),
        ["locked_until"]
    );
}

#[test]
fn queries_and_pages_round_trip() {
    let cursor = Cursor {
        sort: UserSort::Username,
        order: SortOrder::Asc,
        value: CursorValue::Text("m".into()),
        id: Uuid::new_v4(),
    };
    for page in [
        PageRequest::Offset { page: 3 },
        PageRequest::Keyset { after: None },
        PageRequest::Keyset {
            after: Some(cursor),
        },
    ] {
        let q = UserQuery {
            page,
            per_page: 7,
            sort: UserSort::Username,
            order: SortOrder::Asc,
            role: Some(Role::User),
            status: None,
            search: Some("ad".into()),
            created_after: Some(t(1)),
            created_before: None,
        };
        assert_eq!(UserQuery::try_from(pb::UserQuery::from(&q)).unwrap(), q);
    }
    for pagination in [
        PageInfo::offset(2, 20, 41),
        PageInfo::Keyset {
            per_page: 5,
            next_cursor: Some("abc".into()),
        },
    ] {
        round_trip::<UserPage, v1::ListUsersResponse>(UserPage {
            items: vec![user()],
            pagination,
        });
    }
    let broken = v1::ListUsersResponse {
        items: vec![],
        pagination: Some(v1::Pagination {
            per_page: 20,
            ..Default::default()
        }),
    };
    assert_eq!(
        fields(UserPage::try_from(broken).unwrap_err()),
        ["pagination"]
    );
    let q = RawUserQuery {
        per_page: Some("5".into()),
        cursor: Some(String::new()),
        ..Default::default()
    };
    round_trip::<RawUserQuery, v1::ListUsersRequest>(q);
}

#[test]
fn public_messages_round_trip() {
    let s = AuthSession {
        tokens: TokenPair {
            access_token: "a".into(),
            refresh_token: "r".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
        },
        user: user(),
    };
    assert_eq!(
        AuthSession::try_from(v1::AuthResponse::from(s.clone())).unwrap(),
        s
    );
    round_trip::<SessionInfo, v1::Session>(SessionInfo {
        id: Uuid::new_v4(),
        created_at: t(0),
        last_used_at: t(1),
        expires_at: t(2),
        user_agent: None,
        ip: Some("203.0.113.9".into()),
        current: true,
    });
    let input = CreateUserInput {
        username: "u".into(),
        email: "u@example.com".into(),
        password: "Secret123".into(),
        role: Some("admin".into()),
        is_verified: Some(true),
        ..CreateUserInput::default()
    };
    assert!(
        CreateUserInput::try_from(v1::CreateUserRequest::from(input.clone())).unwrap() == input
    );
    let id = Uuid::new_v4();
    let (got, current, new) =
        v1::ChangePasswordRequest::new(id, Some("Old1".into()), "New1".into())
            .parse()
            .unwrap();
    assert_eq!(
        (got, current.as_deref(), new.as_str()),
        (id, Some("Old1"), "New1")
    );
}

#[test]
fn put_without_mask_clears_absent_fields() {
    let id = Uuid::new_v4();
    let req = v1::UpdateUserRequest {
        id: id.to_string(),
        email: Some("a@example.com".into()),
        first_name: Some("A".into()),
        ..Default::default()
    };
    let (got, patch) = update_user_from_request(req).unwrap();
    assert_eq!(got, id);
    assert_eq!(
        patch,
        UserPatch {
            current_password: None,
            email: Some("a@example.com".into()),
            first_name: Some(Some("A".into())),
            last_name: Some(None),
            phone: Some(None),
            avatar_url: Some(None),
        }
    );
    let no_email = v1::UpdateUserRequest {
        id: id.to_string(),
        ..Default::default()
    };
    assert_eq!(
        fields(update_user_from_request(no_email).unwrap_err()),
        ["email"]
    );
}

#[test]
fn patch_with_mask_changes_only_named_paths() {
    let id = Uuid::new_v4();
    let req = v1::UpdateUserRequest {
        id: id.to_string(),
        email: Some("ignored@example.com".into()),
        first_name: Some("A".into()),
        phone: Some("ignored".into()),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["first_name".into(), "last_name".into()],
        }),
        ..Default::default()
    };
    let (_, patch) = update_user_from_request(req).unwrap();
    assert_eq!(
        patch,
        UserPatch {
            current_password: None,
            first_name: Some(Some("A".into())),
            last_name: Some(None),
            ..Default::default()
        }
    );
    let bad = v1::UpdateUserRequest {
        id: "x".into(),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["password".into(), "email".into()],
        }),
        ..Default::default()
    };
    assert_eq!(
        fields(update_user_from_request(bad).unwrap_err()),
        ["email", "id", "update_mask"]
    );
}

#[test]
fn patches_survive_the_client_round_trip() {
    let id = Uuid::new_v4();
    for patch in [
        UserPatch::default(),
        UserPatch {
            current_password: None,
            email: Some("b@example.com".into()),
            phone: Some(None),
            ..Default::default()
        },
        UserPatch {
            current_password: None,
            email: Some("c@example.com".into()),
            first_name: Some(Some("C".into())),
            last_name: Some(None),
            phone: Some(Some("1".into())),
            avatar_url: Some(None),
        },
    ] {
        let back = update_user_from_request(update_user_request(id, patch.clone())).unwrap();
        assert_eq!(back, (id, patch));
    }
}

#[test]
fn second_factors_round_trip() {
    use domain::{
        FactorRemoval, MailLimit, MfaChallenge, MfaFactors, OutgoingMail, RecoveryCodeSet,
        StoredTotp, TotpConfirmation, TotpEnrolment,
    };
    let (user_id, now) = (Uuid::new_v4(), t(9));
    let audit = vec![event(user_id, now)];
    let pending = StoredTotp {
        secret_enc: "v1.nonce.ciphertext".into(),
        created_at: t(1),
        confirmed_at: None,
        last_step: None,
    };
    let enabled = StoredTotp {
        confirmed_at: Some(t(2)),
        last_step: Some(56_666_667),
        ..pending.clone()
    };
    for totp in [None, Some(pending.clone()), Some(enabled.clone())] {
        for (recovery_codes_left, passkeys) in [(0, 0), (10, 0), (0, 3), (7, u32::MAX)] {
            round_trip::<MfaFactors, pb::MfaFactors>(MfaFactors {
                totp: totp.clone(),
                recovery_codes_left,
                passkeys,
            });
        }
    }
    round_trip::<TotpEnrolment, pb::TotpEnrolment>(TotpEnrolment {
        user_id,
        totp: pending,
        audit: audit.clone(),
    });
    let mail = OutgoingMail {
        id: Uuid::new_v4(),
        recipient: "ada@example.com".into(),
        subject: "Two-step sign-in is on".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        created_at: now,
        expires_at: None,
        limit: Some(MailLimit {
            since: t(-3600),
            per_recipient: 5,
            per_domain: 50,
        }),
    };
    for mail in [None, Some(mail.clone())] {
        round_trip::<TotpConfirmation, pb::TotpConfirmation>(TotpConfirmation {
            user_id,
            secret_enc: enabled.secret_enc.clone(),
            step: -1,
            recovery_code_hashes: vec!["a".repeat(64), "b".repeat(64)],
            audit: audit.clone(),
            mail: mail.clone(),
            now,
        });
        for revoke_sessions in [false, true] {
            round_trip::<FactorRemoval, pb::FactorRemoval>(FactorRemoval {
                user_id,
                revoke_sessions,
                audit: audit.clone(),
                mail: mail.clone(),
                now,
            });
        }
    }
    round_trip::<RecoveryCodeSet, pb::RecoveryCodeSet>(RecoveryCodeSet {
        user_id,
        code_hashes: vec!["c".repeat(64)],
        audit: audit.clone(),
        now,
    });
    let challenge = MfaChallenge {
        token_hash: "d".repeat(64),
        user_id,
        network: "203.0.113.0/24".into(),
        credential_version: 3,
        created_at: now,
        expires_at: now + domain::MFA_TOKEN_TTL,
        used_at: None,
    };
    let used = MfaChallenge {
        used_at: Some(t(20)),
        ..challenge.clone()
    };
    round_trip::<MfaChallenge, pb::MfaChallenge>(used.clone());
    for c in [None, Some(challenge), Some(used)] {
        assert_eq!(
            Option::<MfaChallenge>::try_from(pb::OptionalMfaChallenge::from(c.clone())).unwrap(),
            c
        );
    }
    // The call arguments.
    assert_eq!(
        pb::TotpStepRequest::new(user_id, i64::MAX).parse().unwrap(),
        (user_id, i64::MAX)
    );
    let hash = "e".repeat(64);
    assert_eq!(
        pb::RecoveryCodeUse::new(user_id, hash.clone(), now)
            .parse()
            .unwrap(),
        (user_id, hash.clone(), now)
    );
    assert_eq!(
        pb::FindMfaChallengeRequest::new(hash.clone())
            .parse()
            .unwrap(),
        (hash.clone(),)
    );
    assert_eq!(
        pb::SpendMfaChallengeRequest::new(hash.clone(), now)
            .parse()
            .unwrap(),
        (hash, now)
    );
}

#[test]
fn bad_second_factor_values_name_the_field() {
    use domain::{FactorRemoval, MfaChallenge, MfaFactors, TotpConfirmation, TotpEnrolment};
    let step = pb::TotpStepRequest {
        user_id: "nope".into(),
        step: 1,
    };
    assert_eq!(fields(step.parse().unwrap_err()), ["user_id"]);
    let code = pb::RecoveryCodeUse {
        user_id: Uuid::new_v4().to_string(),
        code_hash: "f".repeat(64),
        at: None,
    };
    assert_eq!(fields(code.parse().unwrap_err()), ["at"]);
    let spend = pb::SpendMfaChallengeRequest {
        token_hash: "f".repeat(64),
        at: None,
    };
    assert_eq!(fields(spend.parse().unwrap_err()), ["at"]);
    let enrolment = pb::TotpEnrolment {
        user_id: Uuid::new_v4().to_string(),
        totp: None,
        audit: vec![],
    };
    assert_eq!(
        fields(TotpEnrolment::try_from(enrolment).unwrap_err()),
        ["totp"]
    );
    let confirmation = pb::TotpConfirmation {
        user_id: "nope".into(),
        now: Some(prost_types::Timestamp::default()),
        ..Default::default()
    };
    assert_eq!(
        fields(TotpConfirmation::try_from(confirmation).unwrap_err()),
        ["user_id"]
    );
    let removal = pb::FactorRemoval {
        user_id: Uuid::new_v4().to_string(),
        now: None,
        ..Default::default()
    };
    assert_eq!(
        fields(FactorRemoval::try_from(removal).unwrap_err()),
        ["now"]
    );
    let factors = pb::MfaFactors {
        totp: Some(pb::StoredTotp {
            secret_enc: "x".into(),
            created_at: None,
            confirmed_at: None,
            last_step: None,
        }),
        recovery_codes_left: 0,
        passkeys: 0,
    };
    assert_eq!(
        fields(MfaFactors::try_from(factors).unwrap_err()),
        ["created_at"]
    );
    let challenge = pb::MfaChallenge {
        token_hash: "f".repeat(64),
        user_id: "not-a-uuid".into(),
        created_at: Some(prost_types::Timestamp::default()),
        expires_at: Some(prost_types::Timestamp::default()),
        ..Default::default()
    };
    assert_eq!(
        fields(MfaChallenge::try_from(challenge).unwrap_err()),
        ["user_id"]
    );
}

#[test]
fn passkeys_and_ceremonies_round_trip() {
    use domain::{
        CeremonyKind, MfaFactors, OutgoingMail, PasskeyChange, StoredPasskey, WebauthnCeremony,
    };
    let (user_id, now) = (Uuid::new_v4(), t(9));
    // Absent on the wire (an older peer): no passkeys.
    assert_eq!(
        MfaFactors::try_from(pb::MfaFactors::default()).unwrap(),
        MfaFactors::default()
    );
    let passkey = StoredPasskey {
        id: Uuid::new_v4(),
        user_id,
        credential_id: "AAECAwQFBgcICQoLDA0ODw".into(),
        name: "YubiKey 5 ✓".into(),
        credential: r#"{"cred":{"counter":7}}"#.into(),
        created_at: t(1),
        last_used_at: None,
    };
    let used = StoredPasskey {
        last_used_at: Some(t(5)),
        ..passkey.clone()
    };
    round_trip::<StoredPasskey, pb::StoredPasskey>(passkey.clone());
    round_trip::<StoredPasskey, pb::StoredPasskey>(used.clone());
    for list in [vec![], vec![passkey.clone(), used.clone()]] {
        assert_eq!(
            Vec::<StoredPasskey>::try_from(pb::PasskeyList::from(list.clone())).unwrap(),
            list
        );
    }
    for p in [None, Some(passkey.clone()), Some(used.clone())] {
        assert_eq!(
            Option::<StoredPasskey>::try_from(pb::OptionalPasskey::from(p.clone())).unwrap(),
            p
        );
    }
    let mail = OutgoingMail {
        id: Uuid::new_v4(),
        recipient: "ada@example.com".into(),
        subject: "A passkey was added".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        created_at: now,
        expires_at: None,
        limit: None,
    };
    for mail in [None, Some(mail)] {
        let change = PasskeyChange {
            user_id,
            audit: vec![event(user_id, now)],
            mail,
            now,
        };
        round_trip::<PasskeyChange, pb::PasskeyChange>(change.clone());
        assert_eq!(
            pb::AddPasskeyRequest::new(passkey.clone(), change.clone())
                .parse()
                .unwrap(),
            (passkey.clone(), change.clone())
        );
        assert_eq!(
            pb::RenamePasskeyRequest::new(passkey.id, "work".into(), change.clone())
                .parse()
                .unwrap(),
            (passkey.id, "work".to_owned(), change.clone())
        );
        assert_eq!(
            pb::DeletePasskeyRequest::new(passkey.id, change.clone())
                .parse()
                .unwrap(),
            (passkey.id, change)
        );
    }
    assert_eq!(
        pb::FindPasskeyRequest::new(passkey.credential_id.clone())
            .parse()
            .unwrap(),
        (passkey.credential_id.clone(),)
    );
    assert_eq!(
        pb::PasskeyUse::new(passkey.id, "{}".into(), now)
            .parse()
            .unwrap(),
        (passkey.id, "{}".to_owned(), now)
    );
    for kind in [
        CeremonyKind::Registration,
        CeremonyKind::SecondFactor,
        CeremonyKind::Passwordless,
    ] {
        for user_id in [None, Some(user_id)] {
            let c = WebauthnCeremony {
                id: Uuid::new_v4(),
                kind,
                user_id,
                state: r#"{"challenge":"xyz"}"#.into(),
                created_at: now,
                expires_at: t(300),
                used_at: None,
            };
            let taken = WebauthnCeremony {
                used_at: Some(t(20)),
                ..c.clone()
            };
            round_trip::<WebauthnCeremony, pb::WebauthnCeremony>(c.clone());
            round_trip::<WebauthnCeremony, pb::WebauthnCeremony>(taken.clone());
            for o in [None, Some(c.clone()), Some(taken)] {
                assert_eq!(
                    Option::<WebauthnCeremony>::try_from(pb::OptionalCeremony::from(o.clone()))
                        .unwrap(),
                    o
                );
            }
            assert_eq!(
                pb::TakeCeremonyRequest::new(c.id, kind, now)
                    .parse()
                    .unwrap(),
                (c.id, kind, now)
            );
        }
    }
    assert_eq!(
        pb::TakeCeremonyRequest::new(Uuid::nil(), CeremonyKind::SecondFactor, now).kind,
        "second_factor"
    );
}

#[test]
fn bad_passkey_values_name_the_field() {
    use domain::{PasskeyChange, StoredPasskey, WebauthnCeremony};
    let ts = Some(prost_types::Timestamp::default());
    let passkey = pb::StoredPasskey {
        id: Uuid::new_v4().to_string(),
        user_id: Uuid::new_v4().to_string(),
        credential_id: "abc".into(),
        name: "key".into(),
        credential: "{}".into(),
        created_at: ts,
        last_used_at: None,
    };
    assert!(StoredPasskey::try_from(passkey.clone()).is_ok());
    let bad = pb::StoredPasskey {
        id: "nope".into(),
        ..passkey.clone()
    };
    assert_eq!(fields(StoredPasskey::try_from(bad).unwrap_err()), ["id"]);
    let bad = pb::StoredPasskey {
        user_id: "nope".into(),
        ..passkey.clone()
    };
    assert_eq!(
        fields(StoredPasskey::try_from(bad).unwrap_err()),
        ["user_id"]
    );
    let bad = pb::StoredPasskey {
        created_at: None,
        ..passkey.clone()
    };
    assert_eq!(
        fields(StoredPasskey::try_from(bad).unwrap_err()),
        ["created_at"]
    );
    let change = pb::PasskeyChange {
        user_id: Uuid::new_v4().to_string(),
        audit: vec![],
        mail: None,
        now: ts,
    };
    assert!(PasskeyChange::try_from(change.clone()).is_ok());
    let bad = pb::PasskeyChange {
        now: None,
        ..change.clone()
    };
    assert_eq!(fields(PasskeyChange::try_from(bad).unwrap_err()), ["now"]);
    // A request without its nested messages.
    let add = pb::AddPasskeyRequest {
        passkey: Some(passkey.clone()),
        change: None,
    };
    assert_eq!(fields(add.parse().unwrap_err()), ["change"]);
    let add = pb::AddPasskeyRequest {
        passkey: None,
        change: Some(change.clone()),
    };
    assert_eq!(fields(add.parse().unwrap_err()), ["passkey"]);
    let rename = pb::RenamePasskeyRequest {
        id: "nope".into(),
        name: "x".into(),
        change: Some(change.clone()),
    };
    assert_eq!(fields(rename.parse().unwrap_err()), ["id"]);
    let delete = pb::DeletePasskeyRequest {
        id: Uuid::new_v4().to_string(),
        change: None,
    };
    assert_eq!(fields(delete.parse().unwrap_err()), ["change"]);
    let used = pb::PasskeyUse {
        id: Uuid::new_v4().to_string(),
        credential: "{}".into(),
        at: None,
    };
    assert_eq!(fields(used.parse().unwrap_err()), ["at"]);

    let ceremony = pb::WebauthnCeremony {
        id: Uuid::new_v4().to_string(),
        kind: "registration".into(),
        user_id: None,
        state: "{}".into(),
        created_at: ts,
        expires_at: ts,
        used_at: None,
    };
    assert!(WebauthnCeremony::try_from(ceremony.clone()).is_ok());
    for kind in ["", "Registration", "login", "second-factor"] {
        let bad = pb::WebauthnCeremony {
            kind: kind.into(),
            ..ceremony.clone()
        };
        assert_eq!(
            fields(WebauthnCeremony::try_from(bad).unwrap_err()),
            ["kind"],
            "{kind:?}"
        );
        let take = pb::TakeCeremonyRequest {
            id: Uuid::new_v4().to_string(),
            kind: kind.into(),
            at: ts,
        };
        assert_eq!(fields(take.parse().unwrap_err()), ["kind"], "{kind:?}");
    }
    let bad = pb::WebauthnCeremony {
        user_id: Some("nope".into()),
        ..ceremony.clone()
    };
    assert_eq!(
        fields(WebauthnCeremony::try_from(bad).unwrap_err()),
        ["user_id"]
    );
    let bad = pb::WebauthnCeremony {
        expires_at: None,
        ..ceremony
    };
    assert_eq!(
        fields(WebauthnCeremony::try_from(bad).unwrap_err()),
        ["expires_at"]
    );
}
