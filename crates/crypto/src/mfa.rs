//! Second-factor material: the data key that encrypts TOTP secrets at rest (AES-256-GCM, the
//! account bound in as associated data), TOTP itself (RFC 6238 through `totp-rs`: SHA-1, 6 digits,
//! 30 s, ±1 step), its `otpauth://` URI and QR code (SVG), and recovery codes.
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::rngs::OsRng;
use rand::{RngCore, TryRngCore};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// The TOTP parameters every authenticator app supports.
pub const TOTP_DIGITS: u8 = 6;
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Steps accepted either side of the current one (clock skew).
pub const TOTP_SKEW: u16 = 1;
/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.unwrap_err().fill_bytes(&mut bytes);
    bytes
}

/// One AES-256 key and its id (the first 8 hex digits of its SHA-256).
struct Key {
    id: String,
    key: LessSafeKey,
}

/// The key that encrypts secrets at rest (`ARCANA_DATA_KEY_FILE`): one line per key, each 32
/// bytes in base64; the first encrypts, every one decrypts what it encrypted (rotation: put a new
/// key first, keep the old ones after it). Only the service layer holds it.
pub struct DataKey {
    keys: Vec<Key>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("DataKey").field("ids", &ids).finish()
    }
}

/// Why a data key file or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataKeyError {
    #[error("the data key file holds no key")]
    Empty,
    #[error("line {0} of the data key file is not 32 bytes in base64")]
    BadKey(usize),
    #[error("sealed with a key that is not in the data key file (id {0})")]
    UnknownKey(String),
    #[error("the sealed value is malformed or was tampered with")]
    Corrupt,
}

impl DataKey {
    /// A new key file: one random key, base64, with a newline.
    pub fn generate_file() -> SecretString {
        SecretString::from(format!("{}\n", STANDARD.encode(random::<32>())))
    }

    /// A new key, in memory (tests, processes that keep nothing).
    pub fn generate() -> Self {
        let key = random::<32>();
        let unbound = UnboundKey::new(&AES_256_GCM, &key);
        Self {
            keys: unbound
                .map(|u| Key {
                    id: hex::encode(&Sha256::digest(key)[..4]),
                    key: LessSafeKey::new(u),
                })
                .into_iter()
                .collect(),
        }
    }

    /// Parse a key file (blank lines and `#` comments ignored).
    pub fn from_file_text(text: &str) -> Result<Self, DataKeyError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = STANDARD
                .decode(line)
                .or_else(|_| URL_SAFE_NO_PAD.decode(line))
                .map_err(|_| DataKeyError::BadKey(n + 1))?;
            if bytes.len() != 32 {
                return Err(DataKeyError::BadKey(n + 1));
            }
            let unbound =
                UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| DataKeyError::BadKey(n + 1))?;
            keys.push(Key {
                id: hex::encode(&Sha256::digest(&bytes)[..4]),
                key: LessSafeKey::new(unbound),
            });
        }
        if keys.is_empty() {
            return Err(DataKeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// `<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`; `context` (e.g. the account id) must
    /// be given again to open it, so a value moved to another account does not decrypt.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let key = &self.keys[0];
        let nonce_bytes = random::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        let sealed = key.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(context.as_bytes()),
            &mut buf,
        );
        // Sealing fails only for inputs of gigabytes; a value must never go out unsealed.
        if sealed.is_err() {
            buf.clear();
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        format!("{}.{}", key.id, URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext of [`Self::seal`]'s output under the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, DataKeyError> {
        let (id, body) = sealed.split_once('.').ok_or(DataKeyError::Corrupt)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| DataKeyError::UnknownKey(id.to_owned()))?;
        let mut bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| DataKeyError::Corrupt)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(DataKeyError::Corrupt);
        }
        let mut rest = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| DataKeyError::Corrupt)?;
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut rest)
            .map_err(|_| DataKeyError::Corrupt)?;
        Ok(plain.to_vec())
    }
}

/// A new TOTP secret (160 random bits).
pub fn new_totp_secret() -> Vec<u8> {
    random::<TOTP_SECRET_BYTES>().to_vec()
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<totp_rs::Totp, String> {
    // `:` separates issuer and account in the otpauth label: not allowed inside either.
    let clean = |s: &str| s.replace(':', " ");
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_skew(TOTP_SKEW)
        .with_step_duration(TOTP_STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .map_err(|e| e.to_string())
}

/// The time step of `code` for `secret` at `unix_time` (within ±[`TOTP_SKEW`] steps), if the
/// code is right. Spaces inside the code are ignored.
pub fn check_totp(secret: &[u8], code: &str, unix_time: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(TOTP_DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "x", "x").ok()?.check(&code, unix_time)
}

/// The bytes of a base32 secret as [`TotpEnrolment::secret_base32`] shows it (clients, tests).
pub fn secret_from_base32(b32: &str) -> Option<Vec<u8>> {
    let secret = totp_rs::Secret::try_from_base32(b32.trim().to_ascii_uppercase()).ok()?;
    Some(secret.as_ref().to_vec())
}

/// The code of `secret` at `unix_time` (tests and tools).
pub fn totp_code(secret: &[u8], unix_time: u64) -> Option<String> {
    Some(totp(secret, "x", "x").ok()?.generate(unix_time).to_string())
}

/// What an authenticator app is given: the secret in base32 (no padding), the `otpauth://` URI,
/// and that URI as a QR code (an SVG document).
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

pub fn totp_enrolment(secret: &[u8], issuer: &str, account: &str) -> Result<TotpEnrolment, String> {
    let t = totp(secret, issuer, account)?;
    let otpauth_uri = t.to_url().map_err(|e| e.to_string())?;
    let code = qrcode::QrCode::with_error_correction_level(&otpauth_uri, qrcode::EcLevel::M)
        .map_err(|e| e.to_string())?;
    let qr_svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(TotpEnrolment {
        secret_base32: t.secret().to_base32(),
        otpauth_uri,
        qr_svg,
    })
}

/// Crockford-like base32 without the easily confused letters (I, L, O, U): what a person types.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new recovery code: 80 random bits as 16 characters, `XXXX-XXXX-XXXX-XXXX`.
pub fn new_recovery_code() -> String {
    let bytes = random::<10>();
    let mut acc: u128 = 0;
    for b in bytes {
        acc = (acc << 8) | u128::from(b);
    }
    let mut out = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let idx = ((acc >> (75 - 5 * i)) & 31) as usize;
        out.push(char::from(CODE_ALPHABET[idx]));
    }
    out
}

/// A recovery code as typed, in the form its hash is stored under: upper case, dashes and
/// spaces removed, the confusable letters read as digits (O→0, I/L→1); `None` when it cannot
/// be one.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(16);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && CODE_ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == 16).then_some(out)
}

/// The SHA-256 (hex) a recovery code is stored under; `None` when it cannot be one.
pub fn recovery_code_hash(typed: &str) -> Option<String> {
    normalize_recovery_code(typed).map(|c| crate::sha256_hex(&c))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    // RFC 6238, appendix B: the SHA-1 secret and the 8-digit codes, of which a 6-digit code is
    // the last six digits.
    const RFC_SECRET: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn totp_matches_rfc_6238_vectors() {
        for (t, eight) in RFC_VECTORS {
            let six = &eight[2..];
            assert_eq!(totp_code(RFC_SECRET, t).as_deref(), Some(six), "T={t}");
            assert_eq!(
                check_totp(RFC_SECRET, six, t),
                Some(t / TOTP_STEP_SECONDS),
                "T={t}"
            );
        }
    }

    #[test]
    fn totp_accepts_one_step_of_skew_and_no_more() {
        let t = 1_234_567_890;
        let code = totp_code(RFC_SECRET, t).unwrap_or_default();
        let step = t / 30;
        assert_eq!(check_totp(RFC_SECRET, &code, t + 30), Some(step));
        assert_eq!(check_totp(RFC_SECRET, &code, t - 30), Some(step));
        assert_eq!(check_totp(RFC_SECRET, &code, t + 60), None);
        assert_eq!(check_totp(RFC_SECRET, &code, t - 60), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check_totp(RFC_SECRET, &spaced, t), Some(step));
        for bad in ["", "12345", "1234567", "abcdef", "12345x"] {
            assert_eq!(check_totp(RFC_SECRET, bad, t), None, "{bad}");
        }
    }

    #[test]
    fn enrolment_uri_carries_the_secret_and_a_qr_code() {
        let secret = new_totp_secret();
        assert_eq!(secret.len(), 20);
        let e = totp_enrolment(&secret, "arcana", "alice@example.com").unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert!(
            e.otpauth_uri
                .starts_with("otpauth://totp/arcana:alice%40example.com?"),
            "{}",
            e.otpauth_uri
        );
        assert!(
            e.otpauth_uri
                .contains(&format!("secret={}", e.secret_base32))
        );
        assert!(e.otpauth_uri.contains("issuer=arcana"));
        assert_eq!(e.secret_base32.len(), 32);
        assert!(e.qr_svg.contains("<svg") && e.qr_svg.contains("</svg>"));
        // A colon in the issuer would break the label: replaced.
        let e = totp_enrolment(&secret, "a:b", "c:d").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            e.otpauth_uri.starts_with("otpauth://totp/a%20b:c%20d?"),
            "{}",
            e.otpauth_uri
        );
    }

    #[test]
    fn data_key_seals_per_context_and_rotates() {
        let old = DataKey::generate_file();
        let key = DataKey::from_file_text(old.expose_secret()).unwrap_or_else(|e| panic!("{e}"));
        let sealed = key.seal(b"top secret", "user-1");
        assert!(!sealed.contains("top secret"));
        assert_ne!(
            sealed,
            key.seal(b"top secret", "user-1"),
            "fresh nonce each time"
        );
        assert_eq!(key.open(&sealed, "user-1"), Ok(b"top secret".to_vec()));
        assert_eq!(key.open(&sealed, "user-2"), Err(DataKeyError::Corrupt));
        let mut tampered = sealed.clone();
        let last = tampered.pop().map(|c| if c == 'A' { 'B' } else { 'A' });
        tampered.extend(last);
        assert_eq!(key.open(&tampered, "user-1"), Err(DataKeyError::Corrupt));
        // Rotation: a new key first, the old one kept after it.
        let new = DataKey::generate_file();
        let both = format!(
            "# current\n{}\n{}",
            new.expose_secret(),
            old.expose_secret()
        );
        let rotated = DataKey::from_file_text(&both).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rotated.open(&sealed, "user-1"), Ok(b"top secret".to_vec()));
        let resealed = rotated.seal(b"x", "u");
        assert_ne!(resealed.split('.').next(), sealed.split('.').next());
        assert!(matches!(
            key.open(&resealed, "u"),
            Err(DataKeyError::UnknownKey(_))
        ));
        assert_eq!(
            DataKey::from_file_text("\n# none\n").err(),
            Some(DataKeyError::Empty)
        );
        assert_eq!(
            DataKey::from_file_text("c2hvcnQ=").err(),
            Some(DataKeyError::BadKey(1))
        );
    }

    #[test]
    fn recovery_codes_are_80_bits_and_forgiving_to_type() {
        let a = new_recovery_code();
        assert_eq!(a.len(), 19);
        assert_ne!(a, new_recovery_code());
        assert!(a.split('-').all(|g| g.len() == 4));
        let typed = a.to_lowercase().replace('-', " ");
        assert_eq!(recovery_code_hash(&typed), recovery_code_hash(&a));
        assert_eq!(
            normalize_recovery_code("oill-0000-0000-0000").as_deref(),
            Some("0111000000000000")
        );
        for bad in [
            "",
            "ABCD-EFGH",
            "ABCD-EFGH-JKMN-PQRS-T",
            "ABCD-EFGH-JKMN-PQR!",
        ] {
            assert_eq!(recovery_code_hash(bad), None, "{bad}");
        }
    }
}
