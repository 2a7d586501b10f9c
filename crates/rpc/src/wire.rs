//! How values cross the wire, generically: every scalar through [`Wire`] (UUIDs and enums as
//! text, timestamps as `google.protobuf.Timestamp`, durations as milliseconds), and three macros
//! that derive the struct-to-message copies from the field names both sides share:
//! [`message!`](crate::message) (a domain struct ↔ a message), [`wrapper!`](crate::wrapper) (a
//! one-field reply such as `OptionalUser`) and [`call!`](crate::call) (the arguments of a port
//! call ↔ its request message). The conversions themselves live in [`crate::convert`].
use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::{
    Error, IdTokenAlg, Result, RevokeReason, Role, SortOrder, Status, Timestamp, TokenPurpose,
    UserSort,
};
use uuid::Uuid;

/// A value as it crosses the wire.
pub trait Wire: Sized {
    type Wire;
    fn to_wire(self) -> Self::Wire;
    /// Back from the wire; `field` names it in the validation error.
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self>;
}

macro_rules! same_on_the_wire {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            type Wire = $t;
            fn to_wire(self) -> $t {
                self
            }
            fn from_wire(w: $t, _: &str) -> Result<$t> {
                Ok(w)
            }
        }
    )*};
}
same_on_the_wire!(
    String,
    Vec<String>,
    bool,
    u32,
    u64,
    Option<String>,
    Option<bool>,
    Option<u32>,
    Option<u64>
);

impl Wire for Uuid {
    type Wire = String;
    fn to_wire(self) -> String {
        self.to_string()
    }
    fn from_wire(w: String, field: &str) -> Result<Self> {
        Uuid::parse_str(&w).map_err(|_| Error::validation(field, "must be a UUID"))
    }
}

impl Wire for Timestamp {
    type Wire = Option<prost_types::Timestamp>;
    fn to_wire(self) -> Self::Wire {
        Some(prost_types::Timestamp {
            seconds: self.timestamp(),
            nanos: i32::try_from(self.timestamp_subsec_nanos()).unwrap_or(0),
        })
    }
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
        let t = w.ok_or_else(|| Error::validation(field, "is required"))?;
        let invalid = || Error::validation(field, "is not a valid timestamp");
        let nanos = u32::try_from(t.nanos).map_err(|_| invalid())?;
        Utc.timestamp_opt(t.seconds, nanos)
            .single()
            .ok_or_else(invalid)
    }
}

impl Wire for Duration {
    type Wire = u64;
    fn to_wire(self) -> u64 {
        u64::try_from(self.as_millis()).unwrap_or(u64::MAX)
    }
    fn from_wire(w: u64, _: &str) -> Result<Self> {
        Ok(Duration::from_millis(w))
    }
}

/// The enums travel as their text.
macro_rules! as_text {
    ($($t:ty: $parse:path),*) => {$(
        impl Wire for $t {
            type Wire = String;
            fn to_wire(self) -> String {
                self.as_str().to_owned()
            }
            fn from_wire(w: String, field: &str) -> Result<Self> {
                $parse(&w).map_err(|m| Error::validation(field, m))
            }
        }
    )*};
}
as_text!(
    TokenPurpose: str::parse,
    Role: str::parse,
    Status: str::parse,
    RevokeReason: str::parse,
    UserSort: UserSort::parse,
    SortOrder: SortOrder::parse,
    IdTokenAlg: IdTokenAlg::parse
);

/// An absent value stays absent (optional fields, optional nested messages).
macro_rules! optional {
    ($($t:ty),*) => {$(
        impl Wire for Option<$t> {
            type Wire = Option<<$t as Wire>::Wire>;
            fn to_wire(self) -> Self::Wire {
                self.map(Wire::to_wire)
            }
            fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
                w.map(|w| <$t>::from_wire(w, field)).transpose()
            }
        }
    )*};
}
optional!(Uuid, Role, Status, RevokeReason);

impl Wire for Option<Timestamp> {
    type Wire = Option<prost_types::Timestamp>;
    fn to_wire(self) -> Self::Wire {
        self.and_then(Wire::to_wire)
    }
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
        w.map(|t| Timestamp::from_wire(Some(t), field)).transpose()
    }
}

/// `$domain` ↔ `$wire`, field by field through [`Wire`] (the same field names on both sides).
/// `$domain` also becomes a [`Wire`] value of its own: a required nested message (`Option` of the
/// message on the wire), optional as `Option<$domain>`, repeated as `Vec<$domain>`.
#[macro_export]
macro_rules! message {
    ($domain:ty => $wire:ty { $($field:ident),* $(,)? }) => {
        impl From<$domain> for $wire {
            fn from(d: $domain) -> Self {
                Self { $($field: $crate::wire::Wire::to_wire(d.$field)),* }
            }
        }
        impl TryFrom<$wire> for $domain {
            type Error = domain::Error;
            fn try_from(w: $wire) -> domain::Result<Self> {
                Ok(Self { $($field: $crate::wire::Wire::from_wire(w.$field, stringify!($field))?),* })
            }
        }
        impl $crate::wire::Wire for $domain {
            type Wire = Option<$wire>;
            fn to_wire(self) -> Self::Wire {
                Some(self.into())
            }
            fn from_wire(w: Self::Wire, field: &str) -> domain::Result<Self> {
                w.ok_or_else(|| domain::Error::validation(field, "is required"))?.try_into()
            }
        }
        impl $crate::wire::Wire for Option<$domain> {
            type Wire = Option<$wire>;
            fn to_wire(self) -> Self::Wire {
                self.map(Into::into)
            }
            fn from_wire(w: Self::Wire, _: &str) -> domain::Result<Self> {
                w.map(TryInto::try_into).transpose()
            }
        }
        impl $crate::wire::Wire for Vec<$domain> {
            type Wire = Vec<$wire>;
            fn to_wire(self) -> Self::Wire {
                self.into_iter().map(Into::into).collect()
            }
            fn from_wire(w: Self::Wire, _: &str) -> domain::Result<Self> {
                w.into_iter().map(TryInto::try_into).collect()
            }
        }
    };
}

/// A reply of one field ↔ that field's domain value, e.g. `OptionalUser` ↔ `Option<User>`.
#[macro_export]
macro_rules! wrapper {
    ($wire:ty { $field:ident: $t:ty }) => {
        impl From<$t> for $wire {
            fn from(v: $t) -> Self {
                Self {
                    $field: $crate::wire::Wire::to_wire(v),
                }
            }
        }
        impl TryFrom<$wire> for $t {
            type Error = domain::Error;
            fn try_from(w: $wire) -> domain::Result<Self> {
                $crate::wire::Wire::from_wire(w.$field, stringify!($field))
            }
        }
    };
}

/// The arguments of a call ↔ its request message: `Msg::new(a, b)` builds it, `msg.parse()`
/// gives the arguments back as a tuple.
#[macro_export]
macro_rules! request {
    ($wire:ty { $($field:ident: $t:ty),* $(,)? }) => {
        impl $wire {
            #[allow(clippy::too_many_arguments)]
            pub fn new($($field: $t),*) -> Self {
                Self { $($field: $crate::wire::Wire::to_wire($field)),* }
            }
            pub fn parse(self) -> domain::Result<($($t,)*)> {
                Ok(($($crate::wire::Wire::from_wire(self.$field, stringify!($field))?,)*))
            }
        }
    };
}

/// Messages without fields ↔ `()`.
macro_rules! empty {
    ($($wire:ty),*) => {$(
        impl From<()> for $wire {
            fn from((): ()) -> Self {
                Self {}
            }
        }
        impl TryFrom<$wire> for () {
            type Error = Error;
            fn try_from(_: $wire) -> Result<()> {
                Ok(())
            }
        }
    )*};
}
empty!(
    crate::internal::Empty,
    crate::v1::LogoutRequest,
    crate::v1::LogoutResponse,
    crate::v1::LogoutAllRequest,
    crate::v1::MeRequest,
    crate::v1::ListSessionsRequest,
    crate::v1::RevokeSessionResponse,
    crate::v1::DeleteUserResponse,
    crate::v1::RemoveMfaResponse,
    crate::v1::ListAccessTokensRequest,
    crate::v1::RevokeAccessTokenResponse,
    crate::v1::ListServiceAccountsRequest,
    crate::v1::DeleteServiceAccountResponse,
    crate::v1::GetMfaRequest,
    crate::v1::DisableTotpResponse,
    crate::v1::StartPasskeyRegistrationRequest,
    crate::v1::ListPasskeysRequest,
    crate::v1::DeletePasskeyResponse,
    crate::v1::StartPasskeyLoginRequest,
    crate::v1::DeleteClientResponse,
    crate::v1::DeleteWebhookResponse,
    crate::v1::ChangePasswordResponse,
    crate::v1::ForgotPasswordResponse,
    crate::v1::ResendVerificationRequest,
    crate::v1::ResendVerificationResponse
);
