//! The internal service credential. Every call between layers carries it; every internal server
//! checks it (constant time) before anything else, so reaching an internal port is not enough
//! to act on it.
use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::{MetadataMap, MetadataValue};

pub const INTERNAL_TOKEN: &str = "x-internal-token";

/// The shared secret of the internal network. `Debug` never shows it.
#[derive(Clone)]
pub struct InternalCredential(Arc<str>);

impl fmt::Debug for InternalCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InternalCredential(<redacted>)")
    }
}

/// Credentials shorter than this are refused at startup.
pub const MIN_INTERNAL_TOKEN_LEN: usize = 32;

impl InternalCredential {
    pub fn new(token: &str) -> Result<Self, String> {
        if token.len() < MIN_INTERNAL_TOKEN_LEN {
            return Err(format!(
                "the internal token must be at least {MIN_INTERNAL_TOKEN_LEN} characters"
            ));
        }
        if MetadataValue::try_from(token).is_err() {
            return Err("the internal token must be printable ASCII".into());
        }
        Ok(Self(Arc::from(token)))
    }

    /// Server side: the call must carry exactly this credential.
    pub fn check(&self, md: &MetadataMap) -> Result<(), Status> {
        let presented = md
            .get(INTERNAL_TOKEN)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if bool::from(presented.ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            tracing::warn!("refused an internal call without a valid credential");
            Err(Status::unauthenticated("internal credential required"))
        }
    }

    /// Client side: add the credential to an outgoing call.
    pub fn attach(&self, md: &mut MetadataMap) {
        if let Ok(v) = MetadataValue::try_from(&*self.0) {
            md.insert(INTERNAL_TOKEN, v);
        }
    }

    /// A tonic interceptor that refuses calls without the credential.
    pub fn interceptor(&self) -> impl tonic::service::Interceptor + Clone + use<> {
        let me = self.clone();
        move |req: tonic::Request<()>| -> Result<tonic::Request<()>, Status> {
            me.check(req.metadata())?;
            Ok(req)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_credential() {
        let c = InternalCredential::new("0123456789abcdef0123456789abcdef").unwrap();
        let mut md = MetadataMap::new();
        assert!(c.check(&md).is_err());
        md.insert(
            INTERNAL_TOKEN,
            MetadataValue::from_static("0123456789abcdef0123456789abcdeX"),
        );
        assert!(c.check(&md).is_err());
        c.attach(&mut md);
        assert!(c.check(&md).is_ok());
        assert!(InternalCredential::new("short").is_err());
        assert_eq!(format!("{c:?}"), "InternalCredential(<redacted>)");
    }
}
