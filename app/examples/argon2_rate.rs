//! Password hashes per second through the app's own hasher (argon2id, OWASP parameters,
//! bounded concurrency): the ceiling for logins per second on this machine.
//!
//!   argon2_rate [SECONDS] [CONCURRENCY]     (defaults: 5, the number of cores)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(Ok(5.0), |s| s.parse())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency: usize = args.next().map_or(Ok(cores), |s| s.parse())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let hasher = Arc::new(app::password::PasswordHasher::new(concurrency)?);
        let stored = hasher.hash("benchmark password".into()).await?;
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        // Twice as many callers as slots keeps every slot busy.
        let workers: Vec<_> = (0..concurrency * 2)
            .map(|_| {
                let (hasher, stored, done) = (hasher.clone(), stored.clone(), done.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let ok = hasher
                            .verify("benchmark password".into(), Some(stored.clone()))
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        anyhow::ensure!(ok, "verification failed");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let count = done.load(Ordering::Relaxed);
        println!(
            "{:.1} {:.2}",
            count as f64 / elapsed,
            elapsed * 1000.0 / count as f64 * concurrency as f64
        );
        Ok(())
    })
}
