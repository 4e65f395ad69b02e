//! Argon2id hashing and verification of passwords, with the CPU and memory it may use bounded:
//! every hash runs on the blocking pool after taking a permit, so a flood of login attempts
//! queues instead of starving the server (each hash holds `memory_kib` of RAM while it runs).

use std::sync::Arc;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{Password, normalise};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// The OWASP Password Storage Cheat Sheet minimum for Argon2id (m=19 MiB, t=2, p=1), which
    /// ASVS 4.0 2.4.1 defers to. Stronger settings are allowed, weaker ones refused.
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn is_at_least(&self, other: &Self) -> bool {
        self.memory_kib >= other.memory_kib
            && self.iterations >= other.iterations
            && self.parallelism >= other.parallelism
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP_MINIMUM
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password, or a stored hash that cannot be read (fail closed).
    Mismatch,
    /// Right password. `needs_rehash` says the stored hash is weaker than the current settings
    /// (another algorithm, older version or lower costs): store a fresh hash now, while the
    /// plain password is at hand.
    Match {
        /// Whether to replace the stored hash.
        needs_rehash: bool,
    },
}

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordWorkError {
    /// The configured parameters are below the OWASP minimum or rejected by Argon2.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// Argon2 or the salt source failed.
    #[error("password hashing failed: {0}")]
    Hash(#[from] argon2::password_hash::Error),
    /// The blocking task did not finish (the runtime is shutting down).
    #[error("password hashing task did not finish")]
    Task,
}

/// Hashes and verifies passwords with Argon2id, at most `max_concurrent` at a time.
#[derive(Debug, Clone)]
pub struct PasswordWork {
    params: HashParams,
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A well-formed hash under the current parameters that no password matches, verified
    /// against when the account does not exist so the answer takes as long (no account
    /// enumeration, ASVS 4.0 2.2.x and 3.x timing guidance).
    dummy: Arc<PasswordHash>,
}

impl PasswordWork {
    /// Argon2id with `params` (at least the OWASP minimum), running at most `max_concurrent`
    /// hashes at once (`None`: one per CPU).
    pub fn new(
        params: HashParams,
        max_concurrent: Option<usize>,
    ) -> Result<Self, PasswordWorkError> {
        if !params.is_at_least(&HashParams::OWASP_MINIMUM) {
            return Err(PasswordWorkError::Params(format!(
                "below the OWASP minimum m={} t={} p={}",
                HashParams::OWASP_MINIMUM.memory_kib,
                HashParams::OWASP_MINIMUM.iterations,
                HashParams::OWASP_MINIMUM.parallelism
            )));
        }
        Self::build(params, max_concurrent)
    }

    /// The OWASP minimum parameters, one hash per CPU at a time.
    pub fn owasp_default() -> Result<Self, PasswordWorkError> {
        Self::new(HashParams::OWASP_MINIMUM, None)
    }

    /// Cheap parameters (m=8 KiB, t=1) so tests run fast. Never for real passwords.
    #[allow(clippy::expect_used)] // constant parameters Argon2 accepts; the first test proves it
    pub fn for_tests() -> Self {
        let params = HashParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        Self::build(params, Some(4)).expect("8 KiB, t=1, p=1 are valid Argon2 parameters")
    }

    fn build(params: HashParams, max_concurrent: Option<usize>) -> Result<Self, PasswordWorkError> {
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordWorkError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params.clone());
        let dummy = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&argon_params)?,
            salt: Some(Salt::new(b"rampart-dummy-salt").map_err(dummy_error)?),
            hash: Some(Output::new(&[0u8; Params::DEFAULT_OUTPUT_LEN]).map_err(dummy_error)?),
        };
        let permits = max_concurrent
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1)
            .max(1);
        Ok(Self {
            params,
            argon2,
            permits: Arc::new(Semaphore::new(permits)),
            dummy: Arc::new(dummy),
        })
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of the password, with a fresh
    /// random salt (NIST SP 800-63B 5.1.1.2; ASVS 4.0 2.4.1, 2.4.4).
    pub async fn hash(&self, password: &Password) -> Result<String, PasswordWorkError> {
        let secret = Zeroizing::new(password.expose().to_owned());
        let argon2 = self.argon2.clone();
        self.run(move || {
            argon2
                .hash_password(secret.as_bytes())
                .map(|phc| phc.to_string())
                .map_err(PasswordWorkError::from)
        })
        .await?
    }

    /// Checks a password typed at login against a stored PHC string. The candidate is
    /// normalised like at enrolment, but not held to today's acceptance rule: a password set
    /// under an older rule still works.
    pub async fn verify(&self, candidate: &SecretString, phc: &str) -> Verification {
        let Ok(stored) = PasswordHash::new(phc) else {
            tracing::warn!("a stored password hash could not be parsed");
            return Verification::Mismatch;
        };
        let needs_rehash = self.is_weaker(&stored);
        let secret = normalise(candidate.expose_secret());
        let argon2 = self.argon2.clone();
        let matched = self
            .run(move || argon2.verify_password(secret.as_bytes(), &stored).is_ok())
            .await
            .unwrap_or(false);
        if matched {
            Verification::Match { needs_rehash }
        } else {
            Verification::Mismatch
        }
    }

    /// Spends the same work as `verify` against a hash nothing matches, for an account that
    /// does not exist, so response times do not reveal which accounts do.
    pub async fn verify_dummy(&self, candidate: &SecretString) {
        let secret = normalise(candidate.expose_secret());
        let argon2 = self.argon2.clone();
        let dummy = Arc::clone(&self.dummy);
        let _ = self
            .run(move || argon2.verify_password(secret.as_bytes(), &*dummy).is_ok())
            .await;
    }

    /// Whether the password matches any of the previous hashes given (the caller passes the
    /// last `RotationPolicy::history` of them). Checked one at a time, each under a permit.
    pub async fn is_reused(&self, password: &Password, previous_phcs: &[String]) -> bool {
        let candidate = SecretString::from(password.expose());
        for phc in previous_phcs {
            if let Verification::Match { .. } = self.verify(&candidate, phc).await {
                return true;
            }
        }
        false
    }

    /// Whether a stored hash was made with anything weaker than the current settings.
    fn is_weaker(&self, stored: &PasswordHash) -> bool {
        if stored.algorithm != ARGON2ID_IDENT || stored.version != Some(Version::V0x13.into()) {
            return true;
        }
        match Params::try_from(stored) {
            Ok(p) => !HashParams {
                memory_kib: p.m_cost(),
                iterations: p.t_cost(),
                parallelism: p.p_cost(),
            }
            .is_at_least(&self.params),
            Err(_) => true,
        }
    }

    /// Runs Argon2 work on the blocking pool once a permit is free.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordWorkError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordWorkError::Task)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PasswordWorkError::Task)
    }
}

fn dummy_error(error: argon2::password_hash::phc::Error) -> PasswordWorkError {
    PasswordWorkError::Hash(error.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::password::{BreachedList, PasswordContext};

    fn password(raw: &str) -> Password {
        let breached = BreachedList::empty();
        Password::parse(
            raw,
            &PasswordContext::for_user("a@example.com", "A", &breached),
        )
        .unwrap()
    }

    fn secret(raw: &str) -> SecretString {
        SecretString::from(raw)
    }

    const RIGHT: &str = "violet tugboat sings under frozen chimneys";

    #[tokio::test]
    async fn a_hash_verifies_with_the_right_password_only() {
        let work = PasswordWork::for_tests();
        let phc = work.hash(&password(RIGHT)).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert_eq!(
            work.verify(&secret(RIGHT), &phc).await,
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            work.verify(&secret("violet tugboat sings under frozen chimney"), &phc)
                .await,
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn login_input_is_normalised_like_enrolment() {
        let work = PasswordWork::for_tests();
        let phc = work.hash(&password(RIGHT)).await.unwrap();
        let fullwidth = "ｖｉｏｌｅｔ tugboat sings under frozen chimneys";
        assert!(matches!(
            work.verify(&secret(fullwidth), &phc).await,
            Verification::Match { .. }
        ));
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let work = PasswordWork::for_tests();
        let first = work.hash(&password(RIGHT)).await.unwrap();
        let second = work.hash(&password(RIGHT)).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn a_hash_made_with_weaker_parameters_needs_a_rehash() {
        let weak = PasswordWork::for_tests();
        let phc = weak.hash(&password(RIGHT)).await.unwrap();
        let stronger = HashParams {
            memory_kib: 16,
            iterations: 2,
            parallelism: 1,
        };
        let strong = PasswordWork::build(stronger, Some(1)).unwrap();
        assert_eq!(
            strong.verify(&secret(RIGHT), &phc).await,
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn other_argon2_variants_verify_but_need_a_rehash() {
        let params = Params::new(8, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let phc = argon2i.hash_password(RIGHT.as_bytes()).unwrap().to_string();
        let work = PasswordWork::for_tests();
        assert_eq!(
            work.verify(&secret(RIGHT), &phc).await,
            Verification::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn an_unreadable_stored_hash_is_a_mismatch() {
        let work = PasswordWork::for_tests();
        assert_eq!(
            work.verify(&secret(RIGHT), "not a hash").await,
            Verification::Mismatch
        );
        assert_eq!(
            work.verify(&secret(RIGHT), "").await,
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn the_dummy_verification_completes() {
        PasswordWork::for_tests().verify_dummy(&secret(RIGHT)).await;
    }

    #[tokio::test]
    async fn reuse_is_found_among_previous_hashes() {
        let work = PasswordWork::for_tests();
        let old = work.hash(&password(RIGHT)).await.unwrap();
        let other = work
            .hash(&password("saffron lighthouse drums quietly"))
            .await
            .unwrap();
        let previous = vec![other.clone(), old];
        assert!(work.is_reused(&password(RIGHT), &previous).await);
        assert!(
            !work
                .is_reused(&password("marble otter juggles seven plums"), &previous)
                .await
        );
        assert!(!work.is_reused(&password(RIGHT), &[]).await);
    }

    #[test]
    fn the_default_is_the_owasp_minimum_and_weaker_settings_are_refused() {
        let work = PasswordWork::owasp_default().unwrap();
        assert_eq!(
            work.params(),
            HashParams {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert_eq!(HashParams::default(), HashParams::OWASP_MINIMUM);
        let weaker = HashParams {
            iterations: 1,
            ..HashParams::OWASP_MINIMUM
        };
        assert!(matches!(
            PasswordWork::new(weaker, None),
            Err(PasswordWorkError::Params(_))
        ));
        let stronger = HashParams {
            memory_kib: 64 * 1024,
            ..HashParams::OWASP_MINIMUM
        };
        assert!(PasswordWork::new(stronger, Some(2)).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hashes_are_bounded_by_the_permits() {
        let work = PasswordWork::build(
            HashParams {
                memory_kib: 8,
                iterations: 1,
                parallelism: 1,
            },
            Some(2),
        )
        .unwrap();
        let held = work.permits.clone().acquire_many_owned(2).await.unwrap();
        let pending = {
            let work = work.clone();
            tokio::spawn(async move { work.hash(&password(RIGHT)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!pending.is_finished(), "hashing must wait for a permit");
        drop(held);
        assert!(pending.await.unwrap().is_ok());
    }
}
