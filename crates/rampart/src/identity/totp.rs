//! Time-based one-time passwords (RFC 6238) as a second factor: the shared secret, its
//! enrolment URI and QR code, and verification with one step of drift and no replay
//! (OWASP ASVS 4.0 2.8.x, NIST SP 800-63B 5.1.4.1).

use std::fmt;

use rand::RngExt;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use crate::clock::Millis;

/// Length of a TOTP secret: 160 bits, as RFC 4226 section 4 recommends (ASVS 2.8.3 asks for
/// approved generators; NIST SP 800-63B 5.1.4.1 for at least 112 bits).
pub const TOTP_SECRET_LEN: usize = 20;
/// Digits of a code.
pub const TOTP_DIGITS: usize = 6;
/// Length of a time step in seconds (RFC 6238 section 5.2).
pub const TOTP_STEP_SECS: u64 = 30;
/// Steps of clock drift tolerated either side of the current one. ASVS 2.8.1: a code is
/// valid only for a short time, so a code two steps old is refused.
pub const TOTP_DRIFT_STEPS: u64 = 1;
/// Issuer shown in authenticator apps.
pub const TOTP_ISSUER: &str = "Rampart";

/// The shared TOTP secret. The caller seals it at rest (`to_bytes` / `from_bytes`); it is
/// wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<[u8; TOTP_SECRET_LEN]>);

impl TotpSecret {
    /// A fresh random 160-bit secret.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; TOTP_SECRET_LEN]);
        rand::rng().fill(&mut bytes[..]);
        Self(bytes)
    }

    /// The raw secret, to be sealed before it is stored.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_vec())
    }

    /// Restores an unsealed secret; `None` unless it has exactly 20 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut out = Zeroizing::new([0u8; TOTP_SECRET_LEN]);
        if bytes.len() != TOTP_SECRET_LEN {
            return None;
        }
        out.copy_from_slice(bytes);
        Some(Self(out))
    }

    /// The secret in base32 (RFC 4648), for typing into an authenticator app by hand.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(totp_rs::Secret::from(self.0.to_vec()).to_base32())
    }

    fn totp(&self, account_name: &str) -> Result<Totp, TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(TOTP_DIGITS as u8)
            .with_skew(TOTP_DRIFT_STEPS as u16)
            .with_step_duration(TOTP_STEP_SECS)
            .with_secret(self.0.to_vec())
            .with_issuer(Some(TOTP_ISSUER))
            .with_account_name(account_name)
            .build()
            .map_err(|e| TotpError::Build(format!("{e:?}")))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

/// Why an enrolment URI or QR code could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// The account name or issuer is not allowed in an otpauth URI (a `:`), or the URI is
    /// too long for a QR code.
    #[error("cannot build the TOTP enrolment: {0}")]
    Build(String),
}

/// Why a presented TOTP code was refused. Show every case to the user as the same
/// "invalid code"; the distinction is for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpRejection {
    /// Not exactly six ASCII digits.
    #[error("not a six-digit code")]
    Malformed,
    /// No step within the drift window produces this code.
    #[error("wrong or expired code")]
    Wrong,
    /// The code matches a step already used: RFC 6238 section 5.2 and ASVS 2.8.4 allow each
    /// code to be accepted once only.
    #[error("code already used")]
    Replayed,
}

/// The `otpauth://totp/...` URI an authenticator app enrols from (issuer "Rampart",
/// account `account_name`, usually the user's email).
pub fn provisioning_uri(secret: &TotpSecret, account_name: &str) -> Result<String, TotpError> {
    secret
        .totp(account_name)?
        .to_url()
        .map_err(|e| TotpError::Build(format!("{e:?}")))
}

/// The enrolment URI as a QR code: a PNG, base64-encoded, for a `data:image/png;base64,` URL.
pub fn qr_png_base64(secret: &TotpSecret, account_name: &str) -> Result<String, TotpError> {
    secret
        .totp(account_name)?
        .to_qr_base64()
        .map_err(|e| TotpError::Build(format!("{e:?}")))
}

/// Checks `code` at time `now` and returns the time step it matched, which the caller stores
/// as the new `last_used_step`. Accepts the current step and one step either side; refuses a
/// step at or before `last_used_step`, so a code is accepted once only (ASVS 2.8.4). Every
/// candidate is compared in constant time.
pub fn verify_totp(
    secret: &TotpSecret,
    code: &str,
    now: Millis,
    last_used_step: Option<u64>,
) -> Result<u64, TotpRejection> {
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpRejection::Malformed);
    }
    let totp = secret.totp("").map_err(|_| TotpRejection::Wrong)?;
    let now_secs = u64::try_from(now.max(0) / 1_000).unwrap_or(0);
    let current = now_secs / TOTP_STEP_SECS;
    let mut matched = None;
    for step in current.saturating_sub(TOTP_DRIFT_STEPS)..=current + TOTP_DRIFT_STEPS {
        let expected = Zeroizing::new(totp.generate(step * TOTP_STEP_SECS).to_string());
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(step);
        }
    }
    let step = matched.ok_or(TotpRejection::Wrong)?;
    if last_used_step.is_some_and(|last| step <= last) {
        return Err(TotpRejection::Replayed);
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 appendix B SHA-1 test key.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    fn code_at(secret: &TotpSecret, secs: u64) -> String {
        secret.totp("").unwrap().generate(secs).to_string()
    }

    const NOW: Millis = 1_111_111_109_000;

    #[test]
    fn matches_the_rfc_6238_test_vector() {
        // RFC 6238 appendix B: T = 1111111109 gives 07081804 with 8 digits; 6 digits: 081804.
        assert_eq!(code_at(&rfc_secret(), 1_111_111_109), "081804");
        assert_eq!(
            verify_totp(&rfc_secret(), "081804", NOW, None),
            Ok(1_111_111_109 / 30)
        );
    }

    #[test]
    fn current_code_is_accepted_and_returns_its_step() {
        let secret = TotpSecret::generate();
        let code = code_at(&secret, 1_111_111_109);
        assert_eq!(verify_totp(&secret, &code, NOW, None), Ok(37_037_036));
    }

    #[test]
    fn code_from_the_previous_step_is_accepted() {
        let secret = TotpSecret::generate();
        let code = code_at(&secret, 1_111_111_109 - 30);
        assert_eq!(verify_totp(&secret, &code, NOW, None), Ok(37_037_035));
    }

    #[test]
    fn code_from_the_next_step_is_accepted() {
        let secret = TotpSecret::generate();
        let code = code_at(&secret, 1_111_111_109 + 30);
        assert_eq!(verify_totp(&secret, &code, NOW, None), Ok(37_037_037));
    }

    #[test]
    fn code_two_steps_old_is_refused() {
        let secret = rfc_secret();
        let code = code_at(&secret, 1_111_111_109 - 60);
        assert_eq!(
            verify_totp(&secret, &code, NOW, None),
            Err(TotpRejection::Wrong)
        );
    }

    #[test]
    fn replay_of_the_same_step_is_refused() {
        let secret = TotpSecret::generate();
        let code = code_at(&secret, 1_111_111_109);
        let step = verify_totp(&secret, &code, NOW, None).unwrap();
        assert_eq!(
            verify_totp(&secret, &code, NOW + 5_000, Some(step)),
            Err(TotpRejection::Replayed)
        );
        // An older step than the last one used is refused too.
        let previous = code_at(&secret, 1_111_111_109 - 30);
        assert_eq!(
            verify_totp(&secret, &previous, NOW, Some(step)),
            Err(TotpRejection::Replayed)
        );
        // The next step's code is still fine.
        let next = code_at(&secret, 1_111_111_109 + 30);
        assert_eq!(
            verify_totp(&secret, &next, NOW + 30_000, Some(step)),
            Ok(step + 1)
        );
    }

    #[test]
    fn wrong_code_is_refused() {
        let secret = rfc_secret();
        assert_eq!(
            verify_totp(&secret, "000000", NOW, None),
            Err(TotpRejection::Wrong)
        );
    }

    #[test]
    fn input_that_is_not_six_digits_is_refused() {
        let secret = rfc_secret();
        for bad in [
            "",
            "08180",
            "0818044",
            "08180a",
            "+81804",
            " 81804",
            "０８１８０４",
        ] {
            assert_eq!(
                verify_totp(&secret, bad, NOW, None),
                Err(TotpRejection::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_round_trips_through_bytes_and_is_160_bits() {
        let secret = TotpSecret::generate();
        let bytes = secret.to_bytes();
        assert_eq!(bytes.len(), 20);
        let again = TotpSecret::from_bytes(&bytes).unwrap();
        assert_eq!(again.to_bytes(), bytes);
        assert!(TotpSecret::from_bytes(&[0; 19]).is_none());
        assert_ne!(TotpSecret::generate().to_bytes(), bytes);
    }

    #[test]
    fn provisioning_uri_names_issuer_account_and_secret() {
        let secret = rfc_secret();
        let uri = provisioning_uri(&secret, "ada@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Rampart:ada%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Rampart"), "{uri}");
        assert!(provisioning_uri(&secret, "a:b").is_err());
    }

    #[test]
    fn qr_code_is_a_base64_png() {
        let png = qr_png_base64(&rfc_secret(), "ada@example.com").unwrap();
        assert!(png.starts_with("iVBORw0KGgo"), "{}", &png[..20]);
    }

    #[test]
    fn base32_form_is_the_one_in_the_provisioning_uri() {
        assert_eq!(
            rfc_secret().to_base32().as_str(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(…)");
    }
}
