//! Access tokens: short-lived JWTs with claims `sub, sid, role, iat, exp, iss, aud, jti`.
//!
//! Signed with HS256 (a shared secret of at least 32 bytes) or EdDSA (Ed25519). With EdDSA the
//! header carries `kid` (first 16 hex chars of the SHA-256 of the raw public key) and a verifier
//! may hold several public keys, so keys rotate without invalidating live tokens: add the new
//! public key everywhere, then switch the private key, then drop the old public key after one
//! access-token lifetime.
//!
//! [`TokenVerifier`] needs only public material (or the HS256 secret), so the gateway can verify
//! without being able to sign. Verification pins the algorithm: `none`, a different algorithm
//! or an HMAC token checked against an Ed25519 public key are all rejected.
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{Error, Principal, Result, Role, SessionId, UserId};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Clock skew tolerated on `exp` between the signer and the verifier.
pub const LEEWAY_SECS: i64 = 5;
/// Anything longer is not one of our tokens; refuse before parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Session (refresh-token family) id: lets verifiers check the session is still live.
    pub sid: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
}

struct Signer {
    key: EncodingKey,
    kid: Option<String>,
}

struct VerifyKey {
    key: DecodingKey,
    /// EdDSA only: the key id and the raw public key (base64url) for the JWKS.
    kid: Option<String>,
    x: Option<String>,
}

/// Signing and verification keys: HS256 or Ed25519. Cheap to clone. `Debug` shows only the
/// algorithm and key ids.
#[derive(Clone)]
pub struct JwtKeys {
    alg: Algorithm,
    signer: Option<Arc<Signer>>,
    verify: Arc<Vec<VerifyKey>>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("alg", &self.alg)
            .field("can_sign", &self.signer.is_some())
            .field("kids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// HS256 with a shared secret of at least [`MIN_HS256_SECRET_BYTES`] bytes. Signs and verifies.
    pub fn hs256(secret: &[u8]) -> Result<Self> {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(Error::internal(format_args!(
                "the HS256 JWT secret must be at least {MIN_HS256_SECRET_BYTES} bytes (got {})",
                secret.len()
            )));
        }
        Ok(Self {
            alg: Algorithm::HS256,
            signer: Some(Arc::new(Signer {
                key: EncodingKey::from_secret(secret)
                    .map_err(|e| Error::internal(format_args!("the HS256 JWT secret: {e}")))?,
                kid: None,
            })),
            verify: Arc::new(vec![VerifyKey {
                key: DecodingKey::from_secret(secret)
                    .map_err(|e| Error::internal(format_args!("the HS256 JWT secret: {e}")))?,
                kid: None,
                x: None,
            }]),
        })
    }

    /// EdDSA. `private_pem` (PKCS#8 PEM) signs, and its public key verifies; every key in
    /// `public_pems` (SPKI PEM, several blocks per string allowed) also verifies (rotation).
    /// Without a private key the result can only verify.
    pub fn ed25519(private_pem: Option<&str>, public_pems: &[&str]) -> Result<Self> {
        let mut verify: Vec<VerifyKey> = Vec::new();
        let mut add = |vk: &VerifyingKey| {
            let kid = key_id(vk);
            if !verify
                .iter()
                .any(|k| k.kid.as_deref() == Some(kid.as_str()))
            {
                verify.push(VerifyKey {
                    key: DecodingKey::from_ed_der(vk.as_bytes()),
                    kid: Some(kid),
                    x: Some(URL_SAFE_NO_PAD.encode(vk.as_bytes())),
                });
            }
        };
        let signer = match private_pem {
            Some(pem) => {
                let sk = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
                    Error::internal("the JWT private key is not an Ed25519 PKCS#8 PEM")
                })?;
                let vk = sk.verifying_key();
                add(&vk);
                let der = sk
                    .to_pkcs8_der()
                    .map_err(|e| Error::internal(format_args!("encoding Ed25519 key: {e}")))?;
                Some(Arc::new(Signer {
                    key: EncodingKey::from_ed_der(der.as_bytes()),
                    kid: Some(key_id(&vk)),
                }))
            }
            None => None,
        };
        for text in public_pems {
            let blocks = pem_blocks(text);
            if blocks.is_empty() {
                return Err(Error::internal("a JWT public key is not a PEM block"));
            }
            for block in blocks {
                let vk = VerifyingKey::from_public_key_pem(block).map_err(|_| {
                    Error::internal("a JWT public key is not an Ed25519 public key PEM")
                })?;
                add(&vk);
            }
        }
        if verify.is_empty() {
            return Err(Error::internal("EdDSA needs a private key or a public key"));
        }
        Ok(Self {
            alg: Algorithm::EdDSA,
            signer,
            verify: Arc::new(verify),
        })
    }

    /// `"HS256"` or `"EdDSA"`.
    pub fn algorithm(&self) -> &'static str {
        match self.alg {
            Algorithm::HS256 => "HS256",
            _ => "EdDSA",
        }
    }

    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// Key ids of the verification keys (empty for HS256).
    pub fn key_ids(&self) -> Vec<String> {
        self.verify.iter().filter_map(|k| k.kid.clone()).collect()
    }

    /// The signing half. Fails when these keys can only verify.
    pub fn issuer(&self, issuer: &str, audience: &str) -> Result<TokenIssuer> {
        let signer = self
            .signer
            .clone()
            .ok_or_else(|| Error::internal("no JWT signing key configured"))?;
        Ok(TokenIssuer {
            alg: self.alg,
            signer,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// The verifying half: needs no private key.
    pub fn verifier(&self, issuer: &str, audience: &str) -> TokenVerifier {
        let mut validation = Validation::new(self.alg);
        validation.algorithms = vec![self.alg];
        // Expiry is checked by `verify` itself, after issuer and audience, so a foreign token
        // is never reported as merely "expired".
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        TokenVerifier {
            alg: self.alg,
            keys: self.verify.clone(),
            validation: Arc::new(validation),
        }
    }
}

/// Signs access tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    alg: Algorithm,
    signer: Arc<Signer>,
    issuer: Arc<str>,
    audience: Arc<str>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("alg", &self.alg)
            .field("kid", &self.signer.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// A signed access token valid for `ttl` from now, and its lifetime in seconds.
    pub fn issue(
        &self,
        user_id: UserId,
        session_id: SessionId,
        role: Role,
        ttl: Duration,
    ) -> Result<(String, u64)> {
        self.issue_at(user_id, session_id, role, ttl, unix_now())
    }

    /// As [`TokenIssuer::issue`], with `iat` = `now` (Unix seconds).
    pub fn issue_at(
        &self,
        user_id: UserId,
        session_id: SessionId,
        role: Role,
        ttl: Duration,
        now: i64,
    ) -> Result<(String, u64)> {
        let ttl_secs = ttl.as_secs().max(1);
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            role: role.as_str().to_owned(),
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX)),
            iss: self.issuer.to_string(),
            aud: self.audience.to_string(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = self.sign(&claims)?;
        Ok((token, ttl_secs))
    }

    /// Sign arbitrary claims with this issuer's key (tests build odd tokens with it).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String> {
        let mut header = Header::new(self.alg);
        header.kid = self.signer.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.signer.key)
            .map_err(|e| Error::internal(format_args!("signing access token: {e}")))
    }
}

/// Checks access tokens. Cheap to clone; holds no signing material for EdDSA.
#[derive(Clone)]
pub struct TokenVerifier {
    alg: Algorithm,
    keys: Arc<Vec<VerifyKey>>,
    validation: Arc<Validation>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("alg", &self.alg)
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .filter_map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Signature, algorithm, issuer, audience and expiry. An expired but otherwise valid token
    /// is `Error::TokenExpired`; everything else wrong is `Error::Unauthorized`.
    ///
    /// This does not know whether the session was revoked: callers also ask
    /// `AuthService::session_live` (through a short cache).
    pub fn verify(&self, token: &str) -> Result<Principal> {
        self.verify_at(token, unix_now())
    }

    /// As [`TokenVerifier::verify`] at `now` (Unix seconds).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<Principal> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(Error::Unauthorized);
        }
        // Unknown algorithms (`none` included) fail to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthorized)?;
        if header.alg != self.alg {
            return Err(Error::Unauthorized);
        }
        let candidates: Vec<&VerifyKey> = match (&header.kid, self.alg) {
            (Some(kid), Algorithm::EdDSA) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                .collect(),
            _ => self.keys.iter().collect(),
        };
        let mut claims = None;
        for key in candidates {
            match jsonwebtoken::decode::<AccessClaims>(token, &key.key, &self.validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(_) => return Err(Error::Unauthorized),
            }
        }
        let claims = claims.ok_or(Error::Unauthorized)?;
        if claims.exp.saturating_add(LEEWAY_SECS) <= now {
            return Err(Error::TokenExpired);
        }
        let user_id = claims.sub.parse().map_err(|_| Error::Unauthorized)?;
        let session_id = claims.sid.parse().map_err(|_| Error::Unauthorized)?;
        let role = claims.role.parse().map_err(|_| Error::Unauthorized)?;
        Ok(Principal {
            user_id,
            session_id,
            role,
            scopes: domain::Scopes::SESSION,
        })
    }

    /// The public keys as a JWK Set (`{"keys": []}` for HS256: the secret is never published).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter_map(|k| {
                let (kid, x) = (k.kid.as_ref()?, k.x.as_ref()?);
                Some(serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": x,
                    "kid": kid,
                    "alg": "EdDSA",
                    "use": "sig",
                }))
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// A fresh Ed25519 key pair as (PKCS#8 private PEM, SPKI public PEM).
pub fn generate_ed25519_pem() -> Result<(SecretString, String)> {
    let mut seed = [0u8; 32];
    OsRng.unwrap_err().fill_bytes(&mut seed);
    let sk = SigningKey::from_bytes(&seed);
    let private = sk
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::internal(format_args!("encoding Ed25519 private key: {e}")))?;
    let public = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::internal(format_args!("encoding Ed25519 public key: {e}")))?;
    Ok((SecretString::from(private.as_str()), public))
}

/// First 16 hex chars of the SHA-256 of the raw 32-byte public key.
fn key_id(vk: &VerifyingKey) -> String {
    let mut kid = hex::encode(Sha256::digest(vk.as_bytes()));
    kid.truncate(16);
    kid
}

/// The PEM blocks in `text` (one string may hold several concatenated keys).
pub(crate) fn pem_blocks(text: &str) -> Vec<&str> {
    const END: &str = "-----END ";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let Some(end) = after.find(END) else { break };
        let tail = &after[end + END.len()..];
        let Some(close) = tail.find("-----") else {
            break;
        };
        let len = end + END.len() + close + 5;
        out.push(&after[..len]);
        rest = &after[len..];
    }
    out
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use uuid::Uuid;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const MIN: Duration = Duration::from_secs(15 * 60);

    fn ids() -> (Uuid, Uuid) {
        (Uuid::new_v4(), Uuid::new_v4())
    }

    fn ed_keys() -> (JwtKeys, String) {
        let (private, public) = generate_ed25519_pem().unwrap();
        (
            JwtKeys::ed25519(Some(private.expose_secret()), &[]).unwrap(),
            public,
        )
    }

    fn b64json(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn payload(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn hs256_round_trip_with_all_claims() {
        let keys = JwtKeys::hs256(SECRET).unwrap();
        let (uid, sid) = ids();
        let (token, expires_in) = keys
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::Admin, MIN)
            .unwrap();
        assert_eq!(expires_in, 900);
        let p = keys.verifier("arcana", "arcana").verify(&token).unwrap();
        assert_eq!(
            p,
            Principal {
                user_id: uid,
                session_id: sid,
                role: Role::Admin,
                scopes: domain::Scopes::SESSION,
            }
        );
        let c = payload(&token);
        for claim in ["sub", "sid", "role", "iat", "exp", "iss", "aud", "jti"] {
            assert!(c.get(claim).is_some(), "{claim} missing");
        }
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    }

    #[test]
    fn jti_is_unique() {
        let issuer = JwtKeys::hs256(SECRET).unwrap().issuer("a", "a").unwrap();
        let (uid, sid) = ids();
        let (a, _) = issuer.issue(uid, sid, Role::User, MIN).unwrap();
        let (b, _) = issuer.issue(uid, sid, Role::User, MIN).unwrap();
        assert_ne!(payload(&a)["jti"], payload(&b)["jti"]);
    }

    #[test]
    fn short_hs256_secret_is_refused_with_a_clear_error() {
        let err = JwtKeys::hs256(b"too short").unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    }

    #[test]
    fn tampered_token_is_unauthorized() {
        let keys = JwtKeys::hs256(SECRET).unwrap();
        let (uid, sid) = ids();
        let (token, _) = keys
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims = payload(&token);
        claims["role"] = "admin".into();
        parts[1] = b64json(&claims);
        let forged = parts.join(".");
        let v = keys.verifier("arcana", "arcana");
        assert!(matches!(v.verify(&forged), Err(Error::Unauthorized)));
        // A flipped signature byte too.
        let mut sig = token.clone();
        let last = sig.pop().unwrap();
        sig.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(v.verify(&sig), Err(Error::Unauthorized)));
        for junk in ["", "abc", "a.b.c", "a.b", &"x".repeat(10_000)] {
            assert!(matches!(v.verify(junk), Err(Error::Unauthorized)), "{junk}");
        }
    }

    #[test]
    fn wrong_key_is_unauthorized() {
        let (uid, sid) = ids();
        let (token, _) = JwtKeys::hs256(SECRET)
            .unwrap()
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        let other = JwtKeys::hs256(b"another-secret-another-secret-123").unwrap();
        assert!(matches!(
            other.verifier("arcana", "arcana").verify(&token),
            Err(Error::Unauthorized)
        ));
        let (ed_a, _) = ed_keys();
        let (ed_b, _) = ed_keys();
        let (token, _) = ed_a
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        assert!(matches!(
            ed_b.verifier("arcana", "arcana").verify(&token),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn wrong_audience_or_issuer_is_unauthorized() {
        let keys = JwtKeys::hs256(SECRET).unwrap();
        let (uid, sid) = ids();
        let (token, _) = keys
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        assert!(matches!(
            keys.verifier("arcana", "other-aud").verify(&token),
            Err(Error::Unauthorized)
        ));
        assert!(matches!(
            keys.verifier("other-iss", "arcana").verify(&token),
            Err(Error::Unauthorized)
        ));
        // Even when also expired: a foreign token is not "expired", it is not ours.
        let (old, _) = keys
            .issuer("elsewhere", "arcana")
            .unwrap()
            .issue_at(uid, sid, Role::User, MIN, 1_000)
            .unwrap();
        assert!(matches!(
            keys.verifier("arcana", "arcana").verify(&old),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn expired_token_is_token_expired_with_only_a_few_seconds_leeway() {
        let keys = JwtKeys::hs256(SECRET).unwrap();
        let issuer = keys.issuer("arcana", "arcana").unwrap();
        let v = keys.verifier("arcana", "arcana");
        let (uid, sid) = ids();
        let now = unix_now();
        let (token, _) = issuer
            .issue_at(uid, sid, Role::User, MIN, now - 901)
            .unwrap();
        // exp = now - 1: still inside the leeway.
        assert!(v.verify_at(&token, now).is_ok());
        assert!(matches!(
            v.verify_at(&token, now + LEEWAY_SECS),
            Err(Error::TokenExpired)
        ));
        let (long_ago, _) = issuer
            .issue_at(uid, sid, Role::User, MIN, now - 3600)
            .unwrap();
        assert!(matches!(v.verify(&long_ago), Err(Error::TokenExpired)));
    }

    #[test]
    fn missing_or_malformed_claims_are_unauthorized() {
        let keys = JwtKeys::hs256(SECRET).unwrap();
        let issuer = keys.issuer("arcana", "arcana").unwrap();
        let v = keys.verifier("arcana", "arcana");
        let now = unix_now();
        let good = AccessClaims {
            sub: Uuid::new_v4().to_string(),
            sid: Uuid::new_v4().to_string(),
            role: "user".into(),
            iat: now,
            exp: now + 60,
            iss: "arcana".into(),
            aud: "arcana".into(),
            jti: "j".into(),
        };
        assert!(v.verify(&issuer.sign(&good).unwrap()).is_ok());
        for bad in [
            AccessClaims {
                role: "root".into(),
                ..good.clone()
            },
            AccessClaims {
                sub: "not-a-uuid".into(),
                ..good.clone()
            },
            AccessClaims {
                sid: String::new(),
                ..good.clone()
            },
        ] {
            assert!(matches!(
                v.verify(&issuer.sign(&bad).unwrap()),
                Err(Error::Unauthorized)
            ));
        }
        // No exp at all.
        let header = b64json(&serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        let body = b64json(
            &serde_json::json!({"sub": good.sub, "sid": good.sid, "role": "user",
            "iat": now, "iss": "arcana", "aud": "arcana", "jti": "j"}),
        );
        let msg = format!("{header}.{body}");
        let sig = {
            use hmac::{Hmac, Mac};
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
            mac.update(msg.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        };
        assert!(matches!(
            v.verify(&format!("{msg}.{sig}")),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn alg_none_is_rejected() {
        let keys = JwtKeys::hs256(SECRET).unwrap();
        let now = unix_now();
        let body = b64json(&serde_json::json!({
            "sub": Uuid::new_v4().to_string(), "sid": Uuid::new_v4().to_string(), "role": "admin",
            "iat": now, "exp": now + 600, "iss": "arcana", "aud": "arcana", "jti": "x"}));
        for alg in ["none", "None", "NONE"] {
            let header = b64json(&serde_json::json!({"alg": alg, "typ": "JWT"}));
            for token in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
                assert!(matches!(
                    keys.verifier("arcana", "arcana").verify(&token),
                    Err(Error::Unauthorized)
                ));
                let (ed, _) = ed_keys();
                assert!(matches!(
                    ed.verifier("arcana", "arcana").verify(&token),
                    Err(Error::Unauthorized)
                ));
            }
        }
    }

    #[test]
    fn alg_confusion_is_rejected() {
        // An attacker signs HS256 with the Ed25519 *public* key bytes as the HMAC secret.
        let (ed, public_pem) = ed_keys();
        let now = unix_now();
        let claims = serde_json::json!({
            "sub": Uuid::new_v4().to_string(), "sid": Uuid::new_v4().to_string(), "role": "admin",
            "iat": now, "exp": now + 600, "iss": "arcana", "aud": "arcana", "jti": "x"});
        for secret in [public_pem.as_bytes().to_vec(), {
            let x = ed.verifier("a", "a").jwks()["keys"][0]["x"]
                .as_str()
                .unwrap()
                .to_owned();
            URL_SAFE_NO_PAD.decode(x).unwrap()
        }] {
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&secret).unwrap(),
            )
            .unwrap();
            assert!(matches!(
                ed.verifier("arcana", "arcana").verify(&token),
                Err(Error::Unauthorized)
            ));
        }
        // And an EdDSA token presented to an HS256 verifier.
        let (uid, sid) = ids();
        let (token, _) = ed
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        assert!(matches!(
            JwtKeys::hs256(SECRET)
                .unwrap()
                .verifier("arcana", "arcana")
                .verify(&token),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn eddsa_round_trip_with_kid_and_public_only_verifier() {
        let (private, public) = generate_ed25519_pem().unwrap();
        let signer = JwtKeys::ed25519(Some(private.expose_secret()), &[]).unwrap();
        assert!(signer.can_sign());
        assert_eq!(signer.algorithm(), "EdDSA");
        let (uid, sid) = ids();
        let (token, _) = signer
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::Guest, MIN)
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        let kid = header.kid.unwrap();
        assert_eq!(kid.len(), 16);
        assert_eq!(signer.key_ids(), vec![kid.clone()]);

        let public_only = JwtKeys::ed25519(None, &[&public]).unwrap();
        assert!(!public_only.can_sign());
        assert!(public_only.issuer("arcana", "arcana").is_err());
        let p = public_only
            .verifier("arcana", "arcana")
            .verify(&token)
            .unwrap();
        assert_eq!(p.user_id, uid);
        assert_eq!(p.role, Role::Guest);
        assert_eq!(public_only.key_ids(), vec![kid]);
    }

    #[test]
    fn eddsa_rotation_with_two_keys() {
        let (old_private, old_public) = generate_ed25519_pem().unwrap();
        let (new_private, new_public) = generate_ed25519_pem().unwrap();
        let old = JwtKeys::ed25519(Some(old_private.expose_secret()), &[]).unwrap();
        // After rotation: sign with the new key, still accept the old one.
        let rotated = JwtKeys::ed25519(Some(new_private.expose_secret()), &[&old_public]).unwrap();
        let (uid, sid) = ids();
        let (old_token, _) = old
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        let (new_token, _) = rotated
            .issuer("arcana", "arcana")
            .unwrap()
            .issue(uid, sid, Role::User, MIN)
            .unwrap();
        let v = rotated.verifier("arcana", "arcana");
        assert!(v.verify(&old_token).is_ok());
        assert!(v.verify(&new_token).is_ok());
        assert_eq!(v.jwks()["keys"].as_array().unwrap().len(), 2);
        // A gateway holding both public keys (concatenated in one string) verifies both.
        let both = format!("{new_public}\n{old_public}");
        let gateway = JwtKeys::ed25519(None, &[&both]).unwrap();
        assert!(
            gateway
                .verifier("arcana", "arcana")
                .verify(&old_token)
                .is_ok()
        );
        assert!(
            gateway
                .verifier("arcana", "arcana")
                .verify(&new_token)
                .is_ok()
        );
        // Once the old key is dropped, its tokens stop verifying.
        let dropped = JwtKeys::ed25519(None, &[&new_public]).unwrap();
        assert!(matches!(
            dropped.verifier("arcana", "arcana").verify(&old_token),
            Err(Error::Unauthorized)
        ));
        assert!(
            dropped
                .verifier("arcana", "arcana")
                .verify(&new_token)
                .is_ok()
        );
        // The private key's own public key listed again is not duplicated.
        let dup = JwtKeys::ed25519(Some(new_private.expose_secret()), &[&new_public]).unwrap();
        assert_eq!(dup.key_ids().len(), 1);
    }

    #[test]
    fn token_without_kid_is_tried_against_every_key() {
        let (private, public) = generate_ed25519_pem().unwrap();
        let (_, other_public) = generate_ed25519_pem().unwrap();
        let sk = SigningKey::from_pkcs8_pem(private.expose_secret()).unwrap();
        let der = sk.to_pkcs8_der().unwrap();
        let now = unix_now();
        let claims = serde_json::json!({
            "sub": Uuid::new_v4().to_string(), "sid": Uuid::new_v4().to_string(), "role": "user",
            "iat": now, "exp": now + 600, "iss": "arcana", "aud": "arcana", "jti": "x"});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(der.as_bytes()),
        )
        .unwrap();
        let v = JwtKeys::ed25519(None, &[&other_public, &public])
            .unwrap()
            .verifier("arcana", "arcana");
        assert!(v.verify(&token).is_ok());
        // An unknown kid is refused outright.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("0000000000000000".into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes()))
                .unwrap();
        assert!(matches!(v.verify(&token), Err(Error::Unauthorized)));
    }

    #[test]
    fn jwks_shape() {
        let (private, _) = generate_ed25519_pem().unwrap();
        let keys = JwtKeys::ed25519(Some(private.expose_secret()), &[]).unwrap();
        let jwks = keys.verifier("arcana", "arcana").jwks();
        let k = &jwks["keys"][0];
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kid"], keys.key_ids()[0].as_str());
        let x = URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), 32);
        // kid = first 16 hex chars of sha256(raw public key)
        assert_eq!(k["kid"], &hex::encode(Sha256::digest(&x))[..16]);
        assert_eq!(
            JwtKeys::hs256(SECRET)
                .unwrap()
                .verifier("arcana", "arcana")
                .jwks(),
            serde_json::json!({"keys": []})
        );
    }

    #[test]
    fn bad_pems_are_refused() {
        assert!(JwtKeys::ed25519(None, &[]).is_err());
        assert!(JwtKeys::ed25519(Some("not a pem"), &[]).is_err());
        assert!(JwtKeys::ed25519(None, &["garbage"]).is_err());
        let (_, public) = generate_ed25519_pem().unwrap();
        // A public key where the private one is expected.
        assert!(JwtKeys::ed25519(Some(&public), &[]).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let (private, _) = generate_ed25519_pem().unwrap();
        let ed = JwtKeys::ed25519(Some(private.expose_secret()), &[]).unwrap();
        let hs = JwtKeys::hs256(SECRET).unwrap();
        let texts = [
            format!("{ed:?}"),
            format!("{hs:?}"),
            format!("{:?}", hs.issuer("a", "a").unwrap()),
            format!("{:?}", hs.verifier("a", "a")),
            format!("{:?}", ed.issuer("a", "a").unwrap()),
            format!("{private:?}"),
        ];
        let body: String = private
            .expose_secret()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for t in texts {
            assert!(!t.contains("0123456789abcdef"), "{t}");
            assert!(!t.contains(&body), "{t}");
        }
    }
}
