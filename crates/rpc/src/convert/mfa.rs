//! Domain ↔ `arcana.internal.v1` for the second factors (`domain::MfaRepository` at the
//! repository boundary).
use domain::{
    CeremonyKind, Error, FactorRemoval, MfaChallenge, MfaFactors, PasskeyChange, RecoveryCodeSet,
    Result, StoredPasskey, StoredTotp, Timestamp, TotpConfirmation, TotpEnrolment,
    WebauthnCeremony,
};
use uuid::Uuid;

use crate::internal as pb;
use crate::wire::Wire;
use crate::{message, request, wrapper};

/// A TOTP time step travels as it is (`int64`).
impl Wire for i64 {
    type Wire = i64;
    fn to_wire(self) -> i64 {
        self
    }
    fn from_wire(w: i64, _: &str) -> Result<Self> {
        Ok(w)
    }
}

/// The last accepted time step, absent before the first.
impl Wire for Option<i64> {
    type Wire = Option<i64>;
    fn to_wire(self) -> Option<i64> {
        self
    }
    fn from_wire(w: Option<i64>, _: &str) -> Result<Self> {
        Ok(w)
    }
}

/// What a WebAuthn ceremony is for travels as its text.
impl Wire for CeremonyKind {
    type Wire = String;
    fn to_wire(self) -> String {
        self.as_str().to_owned()
    }
    fn from_wire(w: String, field: &str) -> Result<Self> {
        w.parse().map_err(|m: String| Error::validation(field, m))
    }
}

message!(StoredTotp => pb::StoredTotp { secret_enc, created_at, confirmed_at, last_step });
message!(MfaFactors => pb::MfaFactors { totp, recovery_codes_left, passkeys });
message!(TotpEnrolment => pb::TotpEnrolment { user_id, totp, audit });
message!(TotpConfirmation => pb::TotpConfirmation {
    user_id, secret_enc, step, recovery_code_hashes, audit, mail, now,
});
message!(RecoveryCodeSet => pb::RecoveryCodeSet { user_id, code_hashes, audit, now });
message!(FactorRemoval => pb::FactorRemoval { user_id, revoke_sessions, audit, mail, now });
message!(MfaChallenge => pb::MfaChallenge {
    token_hash, user_id, network, credential_version, created_at, expires_at, used_at,
});
wrapper!(pb::OptionalMfaChallenge { challenge: Option<MfaChallenge> });
request!(pb::TotpStepRequest {
    user_id: Uuid,
    step: i64
});
request!(pb::RecoveryCodeUse {
    user_id: Uuid,
    code_hash: String,
    at: Timestamp
});
request!(pb::FindMfaChallengeRequest { token_hash: String });
request!(pb::SpendMfaChallengeRequest {
    token_hash: String,
    at: Timestamp
});
message!(StoredPasskey => pb::StoredPasskey {
    id, user_id, credential_id, name, credential, created_at, last_used_at,
});
wrapper!(pb::PasskeyList { passkeys: Vec<StoredPasskey> });
wrapper!(pb::OptionalPasskey { passkey: Option<StoredPasskey> });
message!(PasskeyChange => pb::PasskeyChange { user_id, audit, mail, now });
message!(WebauthnCeremony => pb::WebauthnCeremony {
    id, kind, user_id, state, created_at, expires_at, used_at,
});
wrapper!(pb::OptionalCeremony { ceremony: Option<WebauthnCeremony> });
request!(pb::FindPasskeyRequest {
    credential_id: String
});
request!(pb::AddPasskeyRequest {
    passkey: StoredPasskey,
    change: PasskeyChange
});
request!(pb::RenamePasskeyRequest {
    id: Uuid,
    name: String,
    change: PasskeyChange
});
request!(pb::DeletePasskeyRequest {
    id: Uuid,
    change: PasskeyChange
});
request!(pb::PasskeyUse {
    id: Uuid,
    credential: String,
    at: Timestamp
});
request!(pb::TakeCeremonyRequest {
    id: Uuid,
    kind: CeremonyKind,
    at: Timestamp
});
