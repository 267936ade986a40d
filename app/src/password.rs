//! argon2id password hashing (OWASP parameters: 19 MiB, 2 passes, 1 lane), run on the
//! blocking pool behind a semaphore so that hashing never occupies the async worker threads
//! and never runs more than `HASH_CONCURRENCY` at once.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB, t=2, p=1.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// How long a request waits for a hashing slot before it is answered 503.
const SLOT_WAIT: Duration = Duration::from_secs(10);

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords with bounded concurrency.
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that costs as much as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `concurrency` hashes at most at once (about the number of cores).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let random: [u8; 32] = rand::random();
        let dummy_hash = hash_now(&random)?;
        Ok(PasswordHasher {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of `password`.
    pub async fn hash(&self, password: String) -> ApiResult<String> {
        self.run(move || hash_now(password.as_bytes()).map_err(ApiError::internal))
            .await
    }

    /// Whether `password` matches `stored`; with `stored = None` (unknown user) the same
    /// work is done against a dummy hash and the answer is `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> ApiResult<bool> {
        let known = stored.is_some();
        let hash: Arc<str> = match stored {
            Some(hash) => hash.into(),
            None => self.dummy_hash.clone(),
        };
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|err| ApiError::internal(format!("stored password hash: {err}")))?;
                match argon2().verify_password(password.as_bytes(), &parsed) {
                    Ok(()) => Ok(true),
                    Err(argon2::password_hash::Error::Password) => Ok(false),
                    Err(err) => Err(ApiError::internal(format!("password verification: {err}"))),
                }
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T, F>(&self, work: F) -> ApiResult<T>
    where
        F: FnOnce() -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::busy("The server is busy hashing passwords; try again.", 1))?
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(ApiError::internal)?
    }
}

fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|err| anyhow::anyhow!("argon2 salt encoding failed: {err}"))?;
    let hash = argon2()
        .hash_password(password, &salt)
        .map_err(|err| anyhow::anyhow!("argon2 hashing failed: {err}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_parameters_and_verifies() {
        let hasher = PasswordHasher::new(2).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher.verify("wrong".into(), Some(hash)).await.unwrap());
        // Unknown user: never matches, even with the dummy's own password unknown to anyone.
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_internal_error() {
        let hasher = PasswordHasher::new(1).unwrap();
        let err = hasher
            .verify("x".into(), Some("not-a-phc-string".into()))
            .await
            .unwrap_err();
        assert_eq!(err.status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.message.contains("phc"));
    }
}
