//! Password hashes in Werkzeug's string format, so hashes move freely between arcana and the
//! Python reference implementation.
//!
//! - written: `pbkdf2:sha256:<iterations>$<salt>$<hex>` (16 alphanumeric salt chars used as UTF-8
//!   bytes, 32-byte key, lower-case hex) — what `werkzeug.security.generate_password_hash`
//!   produces for `method="pbkdf2:sha256:<iterations>"`;
//! - read: the above with any iteration count, and Werkzeug's `scrypt:N:r:p$<salt>$<hex>`
//!   (`hashlib.scrypt`, 64-byte key). Anything other than PBKDF2 at the current iteration count
//!   asks for a re-hash, which the service performs on the next successful login.
//!
//! Every comparison is constant-time. These functions are CPU-bound (tens of milliseconds at
//! production cost): never call them on an async worker.
use rand::distr::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, TryRngCore};
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use subtle::ConstantTimeEq;

const SALT_CHARS: usize = 16;
const PBKDF2_KEY_LEN: usize = 32;
/// Refuse absurd parameters from a stored hash instead of burning a worker for minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 20_000_000;
/// Memory every scrypt verification in flight may use together (bytes). scrypt is memory-hard:
/// Werkzeug's default (N=2^15, r=8) takes 32 MiB per verification, so N parallel failed logins
/// on imported accounts would take N × 32 MiB. Verifications wait for their share instead; a
/// stored hash that alone needs more than this is refused (never verifiable). With the default,
/// at most two Werkzeug-default verifications run at once, whatever the number of hash workers.
pub const SCRYPT_MEMORY_BUDGET: u64 = 64 * 1024 * 1024;
const MAX_SCRYPT_MEMORY: u64 = SCRYPT_MEMORY_BUDGET;
const MAX_SCRYPT_P: u32 = 16;
/// Werkzeug's defaults for a bare `scrypt` method.
const WERKZEUG_SCRYPT_N: u64 = 1 << 15;
const WERKZEUG_SCRYPT_R: u32 = 8;
const WERKZEUG_SCRYPT_P: u32 = 1;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches; `needs_rehash` when the stored hash is not PBKDF2-SHA256 at the
    /// current iteration count and key length.
    Valid { needs_rehash: bool },
    /// Wrong password, or a stored hash we cannot read (logged at warn, without the hash).
    Invalid,
}

impl Verified {
    pub fn is_valid(self) -> bool {
        matches!(self, Verified::Valid { .. })
    }
}

/// Hash `password` as `pbkdf2:sha256:<iterations>$<salt>$<hex>` with a fresh random salt.
pub fn hash_password(password: &str, iterations: u32) -> String {
    let iterations = iterations.max(1);
    let salt: String = OsRng
        .unwrap_err()
        .sample_iter(&Alphanumeric)
        .take(SALT_CHARS)
        .map(char::from)
        .collect();
    let mut key = [0u8; PBKDF2_KEY_LEN];
    pbkdf2_sha256(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    format!("pbkdf2:sha256:{iterations}${salt}${}", hex::encode(key))
}

/// Check `password` against a Werkzeug-format hash. Malformed hashes are `Invalid`.
pub fn verify_password(password: &str, encoded: &str, current_iterations: u32) -> Verified {
    match verify_inner(password, encoded, current_iterations) {
        Ok(v) => v,
        Err(reason) => {
            // Never log the hash itself: only why it could not be read.
            tracing::warn!(reason, "stored password hash is not in a supported format");
            Verified::Invalid
        }
    }
}

/// Whether `encoded` is a hash [`verify_password`] can check (the format and its parameters;
/// no password is needed): how an import tells importable hashes from the rest.
pub fn check_hash_format(encoded: &str) -> Result<(), &'static str> {
    parse_hash(encoded).map(|_| ())
}

/// A stored hash taken apart: its method with parameters, the salt and the expected key.
struct Parsed<'a> {
    method: Method,
    salt: &'a str,
    expected: Vec<u8>,
}

enum Method {
    Pbkdf2 { iterations: u32 },
    Scrypt { n: u64, r: u32, p: u32 },
}

fn parse_hash(encoded: &str) -> Result<Parsed<'_>, &'static str> {
    let mut parts = encoded.splitn(3, '$');
    let (Some(method), Some(salt), Some(hex_key)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("expected method$salt$hash");
    };
    let expected = hex::decode(hex_key).map_err(|_| "hash part is not hex")?;
    if !(16..=128).contains(&expected.len()) {
        return Err("hash part has an unsupported length");
    }
    let mut args = method.split(':');
    let method = match args.next() {
        Some("pbkdf2") => {
            let (Some("sha256"), Some(iter), None) = (args.next(), args.next(), args.next()) else {
                return Err("only pbkdf2:sha256:<iterations> is supported");
            };
            let iterations: u32 = iter.parse().map_err(|_| "bad pbkdf2 iteration count")?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                return Err("pbkdf2 iteration count out of range");
            }
            Method::Pbkdf2 { iterations }
        }
        Some("scrypt") => {
            let rest: Vec<&str> = args.collect();
            let (n, r, p) = match rest.as_slice() {
                [] => (WERKZEUG_SCRYPT_N, WERKZEUG_SCRYPT_R, WERKZEUG_SCRYPT_P),
                [n, r, p] => (
                    n.parse().map_err(|_| "bad scrypt N")?,
                    r.parse().map_err(|_| "bad scrypt r")?,
                    p.parse().map_err(|_| "bad scrypt p")?,
                ),
                _ => return Err("expected scrypt:N:r:p"),
            };
            check_scrypt_params(n, r, p)?;
            Method::Scrypt { n, r, p }
        }
        _ => return Err("unknown method"),
    };
    Ok(Parsed {
        method,
        salt,
        expected,
    })
}

fn verify_inner(
    password: &str,
    encoded: &str,
    current_iterations: u32,
) -> Result<Verified, &'static str> {
    let Parsed {
        method,
        salt,
        expected,
    } = parse_hash(encoded)?;
    let mut actual = vec![0u8; expected.len()];
    let needs_rehash = match method {
        Method::Pbkdf2 { iterations } => {
            pbkdf2_sha256(
                password.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut actual,
            );
            iterations != current_iterations || expected.len() != PBKDF2_KEY_LEN
        }
        Method::Scrypt { n, r, p } => {
            scrypt_hash(password.as_bytes(), salt.as_bytes(), n, r, p, &mut actual)?;
            true
        }
    };
    if bool::from(actual.ct_eq(&expected)) {
        Ok(Verified::Valid { needs_rehash })
    } else {
        Ok(Verified::Invalid)
    }
}

/// The one PBKDF2 instantiation of the workspace: non-generic, so it is compiled (optimised)
/// in this crate and nowhere else.
#[inline(never)]
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out);
}

fn scrypt_hash(
    password: &[u8],
    salt: &[u8],
    n: u64,
    r: u32,
    p: u32,
    out: &mut [u8],
) -> Result<(), &'static str> {
    check_scrypt_params(n, r, p)?;
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| "scrypt N out of range")?;
    let params =
        scrypt::Params::new(log_n, r, p, out.len()).map_err(|_| "scrypt parameters rejected")?;
    let _share = SCRYPT_MEMORY.acquire(scrypt_memory(n, r));
    scrypt::scrypt(password, salt, &params, out).map_err(|_| "scrypt output length rejected")
}

fn check_scrypt_params(n: u64, r: u32, p: u32) -> Result<(), &'static str> {
    if n < 2 || !n.is_power_of_two() {
        return Err("scrypt N must be a power of two");
    }
    if r == 0 || p == 0 || p > MAX_SCRYPT_P {
        return Err("scrypt r/p out of range");
    }
    if scrypt_memory(n, r) > MAX_SCRYPT_MEMORY {
        return Err("scrypt parameters need too much memory");
    }
    Ok(())
}

/// What one scrypt computation allocates: the N × 128·r scratch array dominates.
fn scrypt_memory(n: u64, r: u32) -> u64 {
    n.saturating_mul(u64::from(r)).saturating_mul(128)
}

/// A counting semaphore over bytes, blocking (hash workers are OS threads).
struct MemoryBudget {
    in_use: Mutex<u64>,
    freed: Condvar,
    limit: u64,
    peak: AtomicU64,
}

static SCRYPT_MEMORY: MemoryBudget = MemoryBudget {
    in_use: Mutex::new(0),
    freed: Condvar::new(),
    limit: SCRYPT_MEMORY_BUDGET,
    peak: AtomicU64::new(0),
};

struct Share<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    fn acquire(&self, bytes: u64) -> Share<'_> {
        let bytes = bytes.min(self.limit);
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        while *in_use + bytes > self.limit {
            in_use = self.freed.wait(in_use).unwrap_or_else(|p| p.into_inner());
        }
        *in_use += bytes;
        self.peak.fetch_max(*in_use, Ordering::Relaxed);
        Share {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        let mut in_use = self.budget.in_use.lock().unwrap_or_else(|p| p.into_inner());
        *in_use -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// The most scrypt memory that was ever in use at once in this process (bytes; metrics, tests).
pub fn scrypt_memory_peak() -> u64 {
    SCRYPT_MEMORY.peak.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with Werkzeug 3.1.8:
    //   generate_password_hash("Secret123", method="pbkdf2:sha256:1000")
    const WERKZEUG_PBKDF2: &str = "pbkdf2:sha256:1000$2OdzSYY7SC5G5rbe$5c2acaf9ed0d23cdf8bc9766d2f8f59d0c2aaab73b361df1ecef6bc1b96a5fa3";
    //   generate_password_hash("Pässwörd-Ünïcode-1", method="pbkdf2:sha256:1000")
    const WERKZEUG_PBKDF2_UNICODE: &str = "pbkdf2:sha256:1000$Jc2mSIhw2slhJR5y$874ede25dadc1df6a18fced9a45ca002e59189364b9746b25f5025705ad40d76";
    //   generate_password_hash("Correct-horse-9", method="pbkdf2:sha256:260000")
    const WERKZEUG_PBKDF2_260K: &str = "pbkdf2:sha256:260000$sEV3FTDjOcwngtrX$0729f19cdacb05074f32a76e38f4eb50be8789ca6131305ce8320b6c90da8fd9";
    //   generate_password_hash("Secret123", method="scrypt")  (Werkzeug's default method)
    const WERKZEUG_SCRYPT_DEFAULT: &str = "scrypt:32768:8:1$7SBsJoeijf5hhkCx$a47e85dd618275049066d85043b6735ff24c34593852c8d60dad19eb470e23be01b46ab6902c081bf57bd6fa537c29ab0a18bbbc7150d2bf29559c94d9383d39";
    //   generate_password_hash("Correct-horse-9", method="scrypt:1024:8:1")
    const WERKZEUG_SCRYPT_SMALL: &str = "scrypt:1024:8:1$QOI7N6lFYgupExpV$f273e95fa6a13d5b785c68b791e3c0a12bb8835c0e107ea45a8ec510502b4637bfb5a83d18283c2ba82206b994ec3b6165650d92ed693bd140a74ffe265bef22";

    #[test]
    fn werkzeug_pbkdf2_hash_verifies() {
        assert_eq!(
            verify_password("Secret123", WERKZEUG_PBKDF2, 1000),
            Verified::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify_password("Secret124", WERKZEUG_PBKDF2, 1000),
            Verified::Invalid
        );
        assert_eq!(
            verify_password("Pässwörd-Ünïcode-1", WERKZEUG_PBKDF2_UNICODE, 1000),
            Verified::Valid {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn other_iteration_counts_verify_and_ask_for_rehash() {
        assert_eq!(
            verify_password("Correct-horse-9", WERKZEUG_PBKDF2_260K, 600_000),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(
            verify_password("Secret123", WERKZEUG_PBKDF2, 600_000),
            Verified::Valid { needs_rehash: true }
        );
    }

    #[test]
    fn werkzeug_scrypt_hashes_verify_and_always_ask_for_rehash() {
        assert_eq!(
            verify_password("Secret123", WERKZEUG_SCRYPT_DEFAULT, 1000),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(
            verify_password("Correct-horse-9", WERKZEUG_SCRYPT_SMALL, 1000),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(
            verify_password("Correct-horse-8", WERKZEUG_SCRYPT_SMALL, 1000),
            Verified::Invalid
        );
        // A bare `scrypt` method means Werkzeug's defaults (N=32768, r=8, p=1).
        let bare = WERKZEUG_SCRYPT_DEFAULT.replacen("scrypt:32768:8:1", "scrypt", 1);
        assert!(verify_password("Secret123", &bare, 1000).is_valid());
    }

    #[test]
    fn hash_has_werkzeug_shape_and_round_trips() {
        let h = hash_password("Secret123", 1000);
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "pbkdf2:sha256:1000");
        assert_eq!(parts[1].len(), 16);
        assert!(parts[1].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(parts[2].len(), 64);
        assert!(
            parts[2]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_eq!(
            verify_password("Secret123", &h, 1000),
            Verified::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify_password("Secret123", &h, 2000),
            Verified::Valid { needs_rehash: true }
        );
        assert_eq!(verify_password("secret123", &h, 1000), Verified::Invalid);
        assert_ne!(h, hash_password("Secret123", 1000), "salts differ");
    }

    #[test]
    fn our_hash_matches_python_hashlib() {
        // hashlib.pbkdf2_hmac('sha256', b'Secret123', b'abcdefghABCDEFGH', 1000).hex()
        let mut key = [0u8; 32];
        pbkdf2_sha256(b"Secret123", b"abcdefghABCDEFGH", 1000, &mut key);
        assert_eq!(
            hex::encode(key),
            "fe75e8759a3d47f5c19c31e337d51f66cedb6dc798e5cc200df76741003e4412"
        );
    }

    #[test]
    fn malformed_hashes_are_invalid() {
        for bad in [
            "",
            "plaintext",
            "pbkdf2:sha256:1000$salt",
            "pbkdf2:sha256:1000$salt$nothex",
            "pbkdf2:sha256:1000$salt$abcd",
            "pbkdf2:sha1:1000$2OdzSYY7SC5G5rbe$5c2acaf9ed0d23cdf8bc9766d2f8f59d0c2aaab73b361df1ecef6bc1b96a5fa3",
            "pbkdf2:sha256$2OdzSYY7SC5G5rbe$5c2acaf9ed0d23cdf8bc9766d2f8f59d0c2aaab73b361df1ecef6bc1b96a5fa3",
            "pbkdf2:sha256:0$2OdzSYY7SC5G5rbe$5c2acaf9ed0d23cdf8bc9766d2f8f59d0c2aaab73b361df1ecef6bc1b96a5fa3",
            "pbkdf2:sha256:99999999999$2OdzSYY7SC5G5rbe$5c2acaf9ed0d23cdf8bc9766d2f8f59d0c2aaab73b361df1ecef6bc1b96a5fa3",
            "scrypt:1000:8:1$QOI7N6lFYgupExpV$f273e95fa6a13d5b785c68b791e3c0a12bb8835c0e107ea45a8ec510502b4637bfb5a83d18283c2ba82206b994ec3b6165650d92ed693bd140a74ffe265bef22",
            "scrypt:1048576:64:1$QOI7N6lFYgupExpV$f273e95fa6a13d5b785c68b791e3c0a12bb8835c0e107ea45a8ec510502b4637bfb5a83d18283c2ba82206b994ec3b6165650d92ed693bd140a74ffe265bef22",
            "scrypt:1024:8$QOI7N6lFYgupExpV$f273e95fa6a13d5b785c68b791e3c0a12bb8835c0e107ea45a8ec510502b4637bfb5a83d18283c2ba82206b994ec3b6165650d92ed693bd140a74ffe265bef22",
            "argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$hash",
        ] {
            assert_eq!(
                verify_password("Secret123", bad, 1000),
                Verified::Invalid,
                "{bad}"
            );
            assert!(check_hash_format(bad).is_err(), "{bad}");
        }
        for good in [
            WERKZEUG_PBKDF2,
            WERKZEUG_PBKDF2_260K,
            WERKZEUG_SCRYPT_DEFAULT,
            WERKZEUG_SCRYPT_SMALL,
        ] {
            assert_eq!(check_hash_format(good), Ok(()), "{good}");
        }
    }
}
