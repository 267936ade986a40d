//! argon2id password hashing (OWASP parameters: 19 MiB, 2 passes, 1 lane) on a pool of
//! `HASH_CONCURRENCY` dedicated threads behind a semaphore: hashing never occupies the async
//! worker threads, never runs more than that many at once, and its threads run at a lower
//! CPU priority (nice 10), so under a login storm the scheduler still serves every other
//! request first and hashing takes the CPU that is left.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};

/// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB, t=2, p=1.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

/// How long a request waits for a hashing slot before it is answered 503.
const SLOT_WAIT: Duration = Duration::from_secs(10);

/// The hashing threads' nice value: below the async workers and PostgreSQL.
const HASHING_NICE: i32 = 10;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords with bounded concurrency.
pub struct PasswordHasher {
    slots: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Verified against when the email is unknown, so that costs as much as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// Starts `concurrency` hashing threads (about the number of cores).
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let concurrency = concurrency.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        for index in 0..concurrency {
            let receiver = receiver.clone();
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_this_threads_priority();
                    let _ = ready.send(());
                    loop {
                        // The lock is held only while taking a job, not while running it.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            // The hasher is gone: the process is shutting down.
                            Err(mpsc::RecvError) => return,
                        }
                    }
                })?;
        }
        drop(ready_tx);
        // Every thread has its priority before the first job can reach it.
        for _ in 0..concurrency {
            ready_rx
                .recv()
                .map_err(|_| anyhow::anyhow!("a hashing thread failed to start"))?;
        }
        let random: [u8; 32] = rand::random();
        let dummy_hash = hash_now(&random)?;
        Ok(PasswordHasher {
            slots: Arc::new(Semaphore::new(concurrency)),
            jobs: Mutex::new(sender),
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
        let permit: OwnedSemaphorePermit =
            tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| ApiError::busy("The server is busy hashing passwords; try again.", 1))?
                .map_err(ApiError::internal)?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = work();
            // The slot frees before the answer is sent: the next job may start at once.
            drop(permit);
            let _ = done.send(outcome);
        });
        self.jobs
            .lock()
            .map_err(|_| ApiError::internal("hashing queue poisoned"))?
            .send(job)
            .map_err(|_| ApiError::internal("hashing threads have stopped"))?;
        result
            .await
            .map_err(|_| ApiError::internal("a hashing thread failed"))?
    }
}

/// Gives the calling thread nice 10. Failure (e.g. a seccomp profile that forbids it) only
/// costs the priority, so it is logged and ignored.
fn lower_this_threads_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority only reads its integer arguments. On Linux, PRIO_PROCESS with a
    // thread id applies to that one thread.
    let result = unsafe {
        nix::libc::setpriority(
            nix::libc::PRIO_PROCESS,
            tid as nix::libc::id_t,
            HASHING_NICE,
        )
    };
    if result != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of a hashing thread"
        );
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
    async fn hashing_threads_run_at_a_lower_priority() {
        let _hasher = PasswordHasher::new(2).unwrap();
        let mut found = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !name.starts_with("argon2-") {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // Field 19 is the nice value; fields after the parenthesized name start at 3.
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            let nice: i32 = after_name.split(' ').nth(16).unwrap().parse().unwrap();
            assert_eq!(nice, HASHING_NICE, "{name}");
            found += 1;
        }
        assert!(found >= 2, "hashing threads found: {found}");
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
