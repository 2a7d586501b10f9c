//! The profile fields a user may change, declared once.
//!
//! [`with_profile_fields!`] hands the list to a macro of the caller's: every place that must know
//! each field (the patch's validation here, the gRPC field mask, the repository's changeset) is
//! generated from it, so a field added to the list is a compile error wherever it is not handled
//! (a struct without it), and the black-box test that sets every field and reads it back covers
//! it by itself. `email` is patchable too but special (it needs the current password, mails and
//! a verification): it is handled by hand everywhere and named in [`PATCHABLE_FIELDS`].
use crate::{FieldErrors, UserPatch, UserProfile, UserUpdate};

/// Calls `$callback!` with every profile field: `name: parser = "a valid sample value"`. The
/// parser turns the submitted value (`None`: cleared) into the stored one, or a message.
#[macro_export]
macro_rules! with_profile_fields {
    ($callback:ident) => {
        $callback! {
            first_name: $crate::parse_name = "Ada",
            last_name: $crate::parse_name = "Lovelace",
            phone: $crate::parse_phone = "+1 555 0100",
            avatar_url: $crate::parse_avatar_url = "https://example.com/ada.png",
        }
    };
}

macro_rules! profile {
    ($($field:ident: $parse:path = $sample:literal),* $(,)?) => {
        /// Every field a patch may change: `email`, then the profile fields.
        pub const PATCHABLE_FIELDS: &[&str] = &["email", $(stringify!($field)),*];

        /// A valid value of each profile field (tests set every field with them).
        pub const PROFILE_SAMPLES: &[(&str, &str)] = &[$((stringify!($field), $sample)),*];

        impl UserPatch {
            /// The fields this patch names, `email` included, in [`PATCHABLE_FIELDS`] order.
            pub fn touched(&self) -> Vec<&'static str> {
                let mut named = Vec::new();
                if self.email.is_some() {
                    named.push("email");
                }
                $(
                    if self.$field.is_some() {
                        named.push(stringify!($field));
                    }
                )*
                named
            }

            /// Validate every profile field the patch names into `update`, each problem
            /// collected in `errs` under the field's name (`email` is left to the caller).
            pub fn validate_profile(&self, errs: &mut FieldErrors, update: &mut UserUpdate) {
                $(
                    if let Some(value) = &self.$field {
                        update.$field = errs.check(stringify!($field), $parse(value.as_deref()));
                    }
                )*
            }

            /// The patch naming the fields `named` says, with the values of `values`, the rest
            /// left alone (a field mask over a full set of values).
            pub fn masked(
                mut self,
                named: impl Fn(&str) -> bool,
                values: ProfileValues,
            ) -> Self {
                $(
                    self.$field = named(stringify!($field)).then_some(values.$field);
                )*
                self
            }

            /// The values of the profile fields (absent: unnamed or cleared).
            pub fn profile_values(&self) -> ProfileValues {
                ProfileValues {
                    $($field: self.$field.clone().flatten(),)*
                }
            }
        }

        /// One value (or none) per profile field: what a message without presence carries.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct ProfileValues {
            $(pub $field: Option<String>,)*
        }

        impl From<UserProfile> for UserPatch {
            /// PUT: every field named, an absent one cleared.
            fn from(p: UserProfile) -> Self {
                Self {
                    current_password: p.current_password,
                    email: Some(p.email),
                    $($field: Some(p.$field),)*
                }
            }
        }
    };
}

with_profile_fields!(profile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_valid_and_every_field_is_validated() {
        let patch = UserPatch {
            first_name: Some(Some("Ada".into())),
            last_name: Some(None),
            phone: Some(Some("call me".into())),
            avatar_url: Some(Some("https://example.com/ada.png".into())),
            ..UserPatch::default()
        };
        assert_eq!(
            patch.touched(),
            ["first_name", "last_name", "phone", "avatar_url"]
        );
        let (mut errs, mut update) = (FieldErrors::new(), UserUpdate::default());
        patch.validate_profile(&mut errs, &mut update);
        assert_eq!(errs.0.keys().collect::<Vec<_>>(), ["phone"]);
        assert_eq!(update.first_name, Some(Some("Ada".into())));
        assert_eq!(update.last_name, Some(None));
        assert_eq!(PATCHABLE_FIELDS.len(), PROFILE_SAMPLES.len() + 1);
        for (field, sample) in PROFILE_SAMPLES {
            let mut p = UserPatch::default().masked(|f| f == *field, ProfileValues::default());
            assert_eq!(p.touched(), [*field]);
            p = p.masked(|f| f == *field, sample_values());
            let (mut errs, mut update) = (FieldErrors::new(), UserUpdate::default());
            p.validate_profile(&mut errs, &mut update);
            assert!(errs.is_empty(), "{field}={sample}: {errs:?}");
            assert!(!update.is_empty(), "{field} reached the update");
        }
    }

    fn sample_values() -> ProfileValues {
        let get = |f: &str| {
            PROFILE_SAMPLES
                .iter()
                .find(|(n, _)| *n == f)
                .map(|(_, v)| (*v).to_owned())
        };
        ProfileValues {
            first_name: get("first_name"),
            last_name: get("last_name"),
            phone: get("phone"),
            avatar_url: get("avatar_url"),
        }
    }
}
