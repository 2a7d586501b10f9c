//! Diesel table definitions; the migrations in `migrations/<backend>` are the source of truth.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        username_key -> Nullable<Text>,
        email -> Text,
        email_key -> Nullable<Text>,
        password_hash -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        phone -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        role -> Text,
        status -> Text,
        is_verified -> Bool,
        failed_login_count -> Integer,
        locked_until -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
        credential_version -> Integer,
        event_seq -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        refresh_token_hash -> Text,
        generation -> Integer,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        credential_version -> Integer,
        previous_refresh_hash -> Nullable<Text>,
        rotated_at -> Nullable<BigInt>,
        amr -> Text,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> BigInt,
        actor_id -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        ip -> Nullable<Text>,
        request_id -> Nullable<Text>,
        details -> Nullable<Text>,
    }
}

diesel::table! {
    account_tokens (id) {
        id -> Text,
        user_id -> Text,
        purpose -> Text,
        token_hash -> Text,
        email -> Text,
        credential_version -> Integer,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        leased_by -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        sent_at -> Nullable<BigInt>,
        failed_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    maintenance_leases (name) {
        name -> Text,
        holder -> Text,
        until -> BigInt,
    }
}

diesel::table! {
    email_changes (id) {
        id -> Text,
        user_id -> Text,
        old_email -> Text,
        old_verified -> Bool,
        new_email -> Text,
        revert_token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        reverted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_networks (user_id, network) {
        user_id -> Text,
        network -> Text,
        failed_count -> Integer,
        locked_until -> Nullable<BigInt>,
        last_failure_at -> Nullable<BigInt>,
        last_success_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    oidc_clients (client_id) {
        client_id -> Text,
        name -> Text,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        is_public -> Bool,
        allowed_scopes -> Text,
        require_consent -> Bool,
        id_token_alg -> Text,
        secret_hash -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    oidc_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        sso_session_id -> Text,
        redirect_uri -> Text,
        scopes -> Text,
        nonce -> Nullable<Text>,
        code_challenge -> Nullable<Text>,
        auth_time -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        session_id -> Nullable<Text>,
    }
}

diesel::table! {
    oidc_grants (session_id) {
        session_id -> Text,
        client_id -> Text,
        sso_session_id -> Text,
        scopes -> Text,
        auth_time -> BigInt,
    }
}

diesel::table! {
    oidc_consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scopes -> Text,
        granted_at -> BigInt,
    }
}

diesel::table! {
    mfa_totp (user_id) {
        user_id -> Text,
        secret_enc -> Text,
        created_at -> BigInt,
        confirmed_at -> Nullable<BigInt>,
        last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    mfa_recovery_codes (user_id, code_hash) {
        user_id -> Text,
        code_hash -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        network -> Text,
        credential_version -> Integer,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webauthn_credentials (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    access_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        scopes -> Text,
        credential_version -> Integer,
        created_at -> BigInt,
        expires_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    service_accounts (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        scopes -> Text,
        secret_hash -> Text,
        previous_secret_hash -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<BigInt>,
        created_at -> BigInt,
        secret_rotated_at -> BigInt,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        url -> Text,
        description -> Text,
        events -> Text,
        secret_enc -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        message_id -> Text,
        event_type -> Text,
        payload -> Text,
        ordering_key -> Text,
        seq -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        first_attempt_at -> Nullable<BigInt>,
        leased_by -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        last_status -> Nullable<Integer>,
        response_excerpt -> Nullable<Text>,
        created_at -> BigInt,
        delivered_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    legacy_users (legacy_id) {
        legacy_id -> BigInt,
        user_id -> Text,
        row_digest -> Text,
        password_digest -> Text,
        imported_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(legacy_users -> users (user_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(access_tokens -> users (user_id));
diesel::joinable!(login_networks -> users (user_id));
diesel::joinable!(email_changes -> users (user_id));
diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(mfa_totp -> users (user_id));
diesel::joinable!(mfa_recovery_codes -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(webauthn_credentials -> users (user_id));
diesel::joinable!(webauthn_ceremonies -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    audit_events,
    account_tokens,
    outbox,
    email_changes,
    login_networks,
    oidc_clients,
    oidc_codes,
    oidc_grants,
    oidc_consents,
    mfa_totp,
    mfa_recovery_codes,
    mfa_challenges,
    webauthn_credentials,
    webauthn_ceremonies,
    access_tokens,
    service_accounts,
    webhooks,
    webhook_deliveries,
    legacy_users
);
