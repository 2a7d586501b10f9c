//! arcana crypto: the few primitives the service and the gateway share.
//!
//! - [`password`]: Werkzeug-compatible password hashes (PBKDF2-HMAC-SHA256 to write, PBKDF2 and
//!   scrypt to read), compared in constant time.
//! - [`tokens`]: opaque refresh-token material and the SHA-256 under which it is stored.
//! - [`jwt`]: access tokens (HS256 or EdDSA with key rotation), their verification and the JWKS.
//! - [`mfa`]: the data key that encrypts TOTP secrets at rest, TOTP codes and their QR code,
//!   recovery codes.
//! - [`oidc`]: the OpenID Connect signing keys (RS256 and EdDSA, `kid` = RFC 7638 thumbprint),
//!   their rotation and the JWK Set that publishes them.
//! - [`webhooks`]: Standard Webhooks secrets and signatures.
//!
//! This crate is compiled with `opt-level = 3` even in dev builds (see the workspace
//! `Cargo.toml`): an unoptimised PBKDF2 is ~40x slower. It does no I/O and owns no runtime;
//! running the expensive hash off the async workers is the caller's job (`service::Hasher`).

pub mod jwt;
pub mod mfa;
pub mod oidc;
pub mod password;
pub mod tokens;
pub mod webhooks;

pub use jwt::{JwtKeys, TokenIssuer, TokenVerifier, generate_ed25519_pem};
pub use oidc::OidcKeys;
pub use password::{Verified, check_hash_format, hash_password, verify_password};
pub use tokens::{new_refresh_token, sha256_base64, sha256_hex};
