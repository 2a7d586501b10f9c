//! The OpenID Connect signing keys: RS256 (every OP must offer it) and EdDSA, each named by its
//! RFC 7638 thumbprint (`kid`), and the JWK Set that publishes every public key — the previous
//! ones during a rotation included — so relying parties verify tokens signed before a rotation.
//!
//! Only the process that signs holds the private keys ([`OidcKeys::from_pem`]); a process that
//! only publishes or verifies (the gateway of a layered deployment) is given the JWK Set itself
//! ([`OidcKeys::from_jwks`]).

use std::fmt;

use base64::Engine as _;
use domain::{Error, Result};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::SecretString;

use crate::jwt::pem_blocks;

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// How an ID token is signed: RS256 unless the client registered EdDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Rs256,
    EdDsa,
}

impl SigningAlg {
    fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The JOSE name (`RS256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }
}

struct Signer {
    kid: String,
    key: EncodingKey,
}

struct Published {
    jwk: Jwk,
    kid: String,
    alg: Algorithm,
    key: DecodingKey,
}

/// The OIDC keys of one process: the current signers (when it signs) and every published key.
pub struct OidcKeys {
    rs256: Option<Signer>,
    eddsa: Option<Signer>,
    published: Vec<Published>,
}

impl fmt::Debug for OidcKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcKeys")
            .field("rs256", &self.rs256.as_ref().map(|s| &s.kid))
            .field("eddsa", &self.eddsa.as_ref().map(|s| &s.kid))
            .field("published", &self.key_ids())
            .finish()
    }
}

impl OidcKeys {
    /// Keys from PEM text holding one or more keys. Private keys (PKCS#8 `PRIVATE KEY`, RSA or
    /// Ed25519, or PKCS#1 `RSA PRIVATE KEY`): the FIRST RSA key signs RS256 and the first
    /// Ed25519 key signs EdDSA; later private keys are previous keys, published and never used
    /// to sign. Public keys (`PUBLIC KEY`, `RSA PUBLIC KEY`) are published only. An RSA signing
    /// key is required; RSA keys must have at least 2048 bits.
    pub fn from_pem(text: &str) -> Result<Self> {
        let mut keys = OidcKeys {
            rs256: None,
            eddsa: None,
            published: Vec::new(),
        };
        let blocks = pem_blocks(text);
        if blocks.is_empty() {
            return Err(invalid("no PEM key found"));
        }
        for (i, block) in blocks.iter().enumerate() {
            let n = i + 1;
            if block.contains("PUBLIC KEY-----") {
                let (key, alg) = if let Ok(k) = DecodingKey::from_rsa_pem(block.as_bytes()) {
                    (k, Algorithm::RS256)
                } else if let Ok(k) = DecodingKey::from_ed_pem(block.as_bytes()) {
                    (k, Algorithm::EdDSA)
                } else {
                    return Err(invalid(format_args!(
                        "key {n} is neither an RSA nor an Ed25519 public key"
                    )));
                };
                let jwk = match alg {
                    Algorithm::RS256 => Jwk::from_decoding_key(&key, Some(alg))
                        .map_err(|e| invalid(format_args!("key {n}: {e}")))?,
                    _ => {
                        let vk = VerifyingKey::from_public_key_pem(block)
                            .map_err(|e| invalid(format_args!("key {n}: {e}")))?;
                        ed25519_jwk(&vk)?
                    }
                };
                keys.publish(jwk, n)?;
                continue;
            }
            let (key, alg) = if let Ok(k) = EncodingKey::from_rsa_pem(block.as_bytes()) {
                (k, Algorithm::RS256)
            } else if let Ok(k) = EncodingKey::from_ed_pem(block.as_bytes()) {
                (k, Algorithm::EdDSA)
            } else {
                return Err(invalid(format_args!(
                    "key {n} is neither an RSA nor an Ed25519 private key"
                )));
            };
            let jwk = match alg {
                Algorithm::RS256 => Jwk::from_encoding_key(&key, alg).map_err(|e| {
                    // aws-lc refuses keys below 2048 bits before we can count them
                    if e.to_string().contains("TooSmall") {
                        invalid(format_args!("key {n}: an RSA key needs at least 2048 bits"))
                    } else {
                        invalid(format_args!("key {n}: {e}"))
                    }
                })?,
                _ => {
                    let sk = SigningKey::from_pkcs8_pem(block)
                        .map_err(|e| invalid(format_args!("key {n}: {e}")))?;
                    ed25519_jwk(&sk.verifying_key())?
                }
            };
            let kid = keys.publish(jwk, n)?;
            let slot = match alg {
                Algorithm::RS256 => &mut keys.rs256,
                _ => &mut keys.eddsa,
            };
            if slot.is_none() {
                *slot = Some(Signer { kid, key });
            }
        }
        if keys.rs256.is_none() {
            return Err(invalid(
                "no RSA private key: RS256 is mandatory for an OpenID provider",
            ));
        }
        Ok(keys)
    }

    /// Keys that are published and verified but never signed with: a JWK Set (`{"keys": [...]}`)
    /// as [`OidcKeys::jwks`] prints it. Every key needs `kid` and `alg` (RS256 or EdDSA).
    pub fn from_jwks(json: &str) -> Result<Self> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| invalid(format_args!("the JWK Set: {e}")))?;
        let mut keys = OidcKeys {
            rs256: None,
            eddsa: None,
            published: Vec::new(),
        };
        for (i, jwk) in set.keys.into_iter().enumerate() {
            let n = i + 1;
            let kid = jwk.common.key_id.clone();
            keys.publish(jwk, n)?;
            if let (Some(given), Some(last)) = (kid, keys.published.last())
                && given != last.kid
            {
                return Err(invalid(format_args!(
                    "key {n}: kid {given:?} is not its RFC 7638 thumbprint"
                )));
            }
        }
        Ok(keys)
    }

    /// Add one public key (its kid is its SHA-256 thumbprint; the same key twice is kept once).
    fn publish(&mut self, mut jwk: Jwk, n: usize) -> Result<String> {
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => {
                let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&p.n)
                    .map_err(|e| invalid(format_args!("key {n}: modulus: {e}")))?;
                let bytes = modulus.iter().skip_while(|b| **b == 0).count();
                if bytes < MIN_RSA_MODULUS_BYTES {
                    return Err(invalid(format_args!(
                        "key {n}: an RSA key needs at least 2048 bits (this one has {})",
                        bytes * 8
                    )));
                }
                Algorithm::RS256
            }
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => {
                return Err(invalid(format_args!(
                    "key {n}: only RSA and Ed25519 keys are supported"
                )));
            }
        };
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| invalid(format_args!("key {n}: {e}")))?;
        if self.published.iter().any(|p| p.kid == kid) {
            return Ok(kid);
        }
        jwk.common.key_id = Some(kid.clone());
        jwk.common.key_algorithm = Some(match alg {
            Algorithm::RS256 => KeyAlgorithm::RS256,
            _ => KeyAlgorithm::EdDSA,
        });
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(format_args!("key {n}: {e}")))?;
        self.published.push(Published {
            jwk,
            kid: kid.clone(),
            alg,
            key,
        });
        Ok(kid)
    }

    /// Whether this process can sign with `alg`.
    pub fn can_sign(&self, alg: SigningAlg) -> bool {
        self.signer(alg).is_some()
    }

    fn signer(&self, alg: SigningAlg) -> Option<&Signer> {
        match alg {
            SigningAlg::Rs256 => self.rs256.as_ref(),
            SigningAlg::EdDsa => self.eddsa.as_ref(),
        }
    }

    /// The kid of every published key, current signers first in file order.
    pub fn key_ids(&self) -> Vec<String> {
        self.published.iter().map(|p| p.kid.clone()).collect()
    }

    /// A JWT with header `{alg, kid, typ}` over `claims`, signed by the current key of `alg`.
    pub fn sign<T: serde::Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &T,
    ) -> Result<String> {
        let signer = self.signer(alg).ok_or_else(|| {
            Error::internal(format_args!("no {} signing key loaded", alg.as_str()))
        })?;
        let mut header = jsonwebtoken::Header::new(alg.algorithm());
        header.kid = Some(signer.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &signer.key)
            .map_err(|e| Error::internal(format_args!("signing a {typ} token: {e}")))
    }

    /// The claims of a token signed by one of the published keys (chosen by the header's `kid`
    /// and `alg`). `validation` says which registered claims are required and checked.
    pub fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        validation: &jsonwebtoken::Validation,
    ) -> Result<T> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthorized)?;
        let key = self
            .published
            .iter()
            .find(|p| Some(&p.kid) == header.kid.as_ref() && p.alg == header.alg)
            .ok_or(Error::Unauthorized)?;
        let mut validation = validation.clone();
        validation.algorithms = vec![key.alg];
        jsonwebtoken::decode::<T>(token, &key.key, &validation)
            .map(|d| d.claims)
            .map_err(|_| Error::Unauthorized)
    }

    /// The claims of a token of type `typ` (its header's `typ`) that one of the published keys
    /// signed for `issuer`, unexpired (no leeway); the audience is the caller's to check.
    pub fn verify_typed<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        issuer: &str,
    ) -> Result<T> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthorized)?;
        if header.typ.as_deref() != Some(typ) {
            return Err(Error::Unauthorized);
        }
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        self.verify(token, &validation)
    }

    /// The claims of an ID token this issuer signed, expired or not (an `id_token_hint`).
    pub fn verify_hint<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
    ) -> Result<T> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthorized)?;
        if header.typ.as_deref() != Some("JWT") {
            return Err(Error::Unauthorized);
        }
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        self.verify(token, &validation)
    }

    /// The JWK Set of every published key.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<&Jwk> = self.published.iter().map(|p| &p.jwk).collect();
        serde_json::json!({ "keys": keys })
    }
}

/// PKCE S256 (RFC 7636 §4.2): BASE64URL(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// `at_hash` (OpenID Connect Core §3.1.3.6): base64url of the left half of the hash `alg`
/// signs with (SHA-256 for RS256, SHA-512 for EdDSA over Ed25519).
pub fn half_hash(alg: SigningAlg, token: &str) -> String {
    use sha2::Digest;
    let digest: Vec<u8> = match alg {
        SigningAlg::Rs256 => sha2::Sha256::digest(token.as_bytes()).to_vec(),
        SigningAlg::EdDsa => sha2::Sha512::digest(token.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// A fresh key file: an RSA-2048 and an Ed25519 private key, PKCS#8 PEM, concatenated.
pub fn generate_pem() -> Result<SecretString> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| Error::internal("generating an RSA key"))?;
    let der: Pkcs8V1Der<'_> = rsa
        .as_der()
        .map_err(|_| Error::internal("encoding the RSA key"))?;
    let mut text = pem_encode("PRIVATE KEY", der.as_ref());
    let (ed, _) = crate::jwt::generate_ed25519_pem()?;
    text.push_str(secrecy::ExposeSecret::expose_secret(&ed));
    Ok(SecretString::from(text))
}

/// The public JWK of an Ed25519 key (jsonwebtoken derives it only from a PKCS#8 v1 document).
fn ed25519_jwk(vk: &VerifyingKey) -> Result<Jwk> {
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vk.as_bytes());
    serde_json::from_value(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
        .map_err(|e| invalid(format_args!("an Ed25519 JWK: {e}")))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn invalid(msg: impl fmt::Display) -> Error {
    Error::internal(format_args!("OIDC signing keys: {msg}"))
}

/// Whether `token` is a JWT whose header says `typ: at+jwt` (RFC 9068): nothing is verified,
/// it only tells which verifier to ask.
pub fn is_at_jwt(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.typ.as_deref() == Some("at+jwt"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::{Value, json};

    fn generated() -> String {
        generate_pem().unwrap().expose_secret().to_owned()
    }

    fn validation() -> jsonwebtoken::Validation {
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.set_audience(&["client"]);
        v.set_issuer(&["https://id.example.com"]);
        v
    }

    fn claims() -> Value {
        json!({"iss": "https://id.example.com", "aud": "client", "sub": "u",
               "exp": 4_000_000_000_i64, "iat": 1_700_000_000})
    }

    #[test]
    fn a_generated_file_signs_rs256_and_eddsa_and_publishes_both() {
        let keys = OidcKeys::from_pem(&generated()).unwrap();
        let jwks = keys.jwks();
        let set = jwks["keys"].as_array().unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(
            (
                set[0]["kty"].as_str(),
                set[0]["alg"].as_str(),
                set[0]["use"].as_str()
            ),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
        assert_eq!(set[0]["e"], "AQAB");
        assert_eq!(
            (
                set[1]["kty"].as_str(),
                set[1]["crv"].as_str(),
                set[1]["alg"].as_str()
            ),
            (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
        );
        for k in set {
            assert!(k.get("d").is_none(), "no private part published: {k}");
            assert_eq!(k["kid"].as_str().unwrap().len(), 43, "a SHA-256 thumbprint");
        }
        for alg in [SigningAlg::Rs256, SigningAlg::EdDsa] {
            let token = keys.sign(alg, "JWT", &claims()).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg.algorithm());
            assert!(keys.key_ids().contains(&header.kid.unwrap()));
            let back: Value = keys.verify(&token, &validation()).unwrap();
            assert_eq!(back["sub"], "u");
        }
    }

    /// What a relying party does: take the published JWKS only and verify a token with it.
    #[test]
    fn the_published_set_alone_verifies_what_the_signer_signed() {
        let signer = OidcKeys::from_pem(&generated()).unwrap();
        let token = signer.sign(SigningAlg::Rs256, "JWT", &claims()).unwrap();
        let public = OidcKeys::from_jwks(&signer.jwks().to_string()).unwrap();
        assert!(!public.can_sign(SigningAlg::Rs256));
        assert_eq!(public.key_ids(), signer.key_ids());
        let back: Value = public.verify(&token, &validation()).unwrap();
        assert_eq!(back["sub"], "u");
        // tampered payload: refused
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            r#"{"iss":"https://id.example.com","aud":"client","sub":"admin","exp":4000000000}"#,
        );
        parts[1] = &forged;
        assert!(matches!(
            public.verify::<Value>(&parts.join("."), &validation()),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn a_rotation_publishes_the_previous_key_and_signs_with_the_new_one() {
        let old_file = generated();
        let old = OidcKeys::from_pem(&old_file).unwrap();
        let old_token = old.sign(SigningAlg::Rs256, "JWT", &claims()).unwrap();
        let new_file = generated();
        // the new keys first, the previous ones after them
        let rotated = OidcKeys::from_pem(&format!("{new_file}{old_file}")).unwrap();
        assert_eq!(rotated.key_ids().len(), 4);
        let new_token = rotated.sign(SigningAlg::Rs256, "JWT", &claims()).unwrap();
        let new_kid = jsonwebtoken::decode_header(&new_token).unwrap().kid;
        assert_ne!(
            new_kid,
            jsonwebtoken::decode_header(&old_token).unwrap().kid
        );
        assert_eq!(new_kid.as_deref(), Some(rotated.key_ids()[0].as_str()));
        let relying_party = OidcKeys::from_jwks(&rotated.jwks().to_string()).unwrap();
        for t in [&old_token, &new_token] {
            relying_party.verify::<Value>(t, &validation()).unwrap();
        }
        // once the previous key is dropped, its tokens stop verifying
        let after = OidcKeys::from_pem(&new_file).unwrap();
        assert!(after.verify::<Value>(&old_token, &validation()).is_err());
    }

    #[test]
    fn bad_key_material_is_refused_with_a_reason() {
        let weak = {
            // a 1024-bit RSA key (aws-lc refuses to make one; this is a fixed test vector)
            include_str!("testdata/rsa1024.pem")
        };
        let msg = |r: Result<OidcKeys>| format!("{:?}", r.unwrap_err());
        let m = msg(OidcKeys::from_pem(weak));
        assert!(m.contains("at least 2048 bits"), "{m}");
        assert!(msg(OidcKeys::from_pem("not a key")).contains("no PEM key"));
        let (ed, _) = crate::jwt::generate_ed25519_pem().unwrap();
        assert!(msg(OidcKeys::from_pem(ed.expose_secret())).contains("RS256 is mandatory"));
        assert!(msg(OidcKeys::from_jwks("{")).contains("JWK Set"));
        let mut set = OidcKeys::from_pem(&generated()).unwrap().jwks();
        set["keys"][0]["kid"] = json!("chosen-by-me");
        assert!(msg(OidcKeys::from_jwks(&set.to_string())).contains("thumbprint"));
    }

    #[test]
    fn a_token_of_an_unknown_key_or_algorithm_is_refused() {
        let a = OidcKeys::from_pem(&generated()).unwrap();
        let b = OidcKeys::from_pem(&generated()).unwrap();
        let token = b.sign(SigningAlg::Rs256, "JWT", &claims()).unwrap();
        assert!(a.verify::<Value>(&token, &validation()).is_err());
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap(),
        )
        .unwrap();
        assert!(a.verify::<Value>(&hs, &validation()).is_err());
    }

    #[test]
    fn pkce_and_at_hash_vectors() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // OpenID Connect Core A.3 (RS256 over SHA-256).
        assert_eq!(
            half_hash(
                SigningAlg::Rs256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(half_hash(SigningAlg::EdDsa, "x").len(), 43);
    }
}
