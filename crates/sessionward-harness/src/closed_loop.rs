//! Closed-loop throughput: populate sessions, then validate as fast as N threads can for a
//! wall-clock duration, at several thread counts.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sessionward_core::{
    Engine, Error, LoginRequest, OrgSettings, Profile, Requirement, SystemClock, TOKEN_LEN,
};

use crate::{ProgressBar, ThroughputPoint};

/// Settings of a closed-loop measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedLoopOptions {
    /// Sessions populated before measuring (validations pick among them at random).
    pub sessions: u32,
    /// Wall-clock length of each point.
    pub duration: Duration,
    /// Thread counts to measure, in order.
    pub threads: Vec<usize>,
    /// Seed of the token picks.
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl ClosedLoopOptions {
    /// 1..=available parallelism, the default thread counts.
    #[must_use]
    pub fn default_threads() -> Vec<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (1..=cores).collect()
    }
}

/// The address every closed-loop session comes from (inside the trusted range).
const OFFICE: [u8; 4] = [10, 0, 0, 1];
/// Sessions per user while populating.
const SESSIONS_PER_USER: u32 = 64;

/// An engine on the system clock with `sessions` live sessions (24 h timeouts), and their
/// tokens (`keep_tokens`) or none.
pub(crate) fn populate(sessions: u32, keep_tokens: bool) -> Result<(Engine, Vec<String>), Error> {
    let settings = OrgSettings::builder()
        .inactivity_timeout(Duration::from_secs(24 * 3600))
        .max_session_length(Duration::from_secs(24 * 3600))
        .trusted_range("10.0.0.0/8")
        .build()?;
    let engine = Engine::builder()
        .settings(settings)
        .clock(Arc::new(SystemClock))
        .event_capacity(0)
        .build()?;
    engine.add_profile(Profile::builder("bench").build()?)?;
    let users = sessions.div_ceil(SESSIONS_PER_USER).max(1);
    let ids: Vec<String> = (0..users).map(|u| format!("bench-{u:07}")).collect();
    for id in &ids {
        engine.add_user(id, "bench")?;
    }
    let ip = IpAddr::from(OFFICE);
    let mut tokens = Vec::with_capacity(if keep_tokens { sessions as usize } else { 0 });
    for i in 0..sessions {
        let id = &ids[(i % users) as usize];
        if let Some(issued) = engine.login(&LoginRequest::new(id, ip))?.issued() {
            if keep_tokens {
                tokens.push(issued.token.expose_secret().to_owned());
            }
        }
    }
    Ok((engine, tokens))
}

/// Populates `options.sessions` sessions and measures validations per second at each thread
/// count.
///
/// # Errors
///
/// An engine error while populating (none is expected).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sessionward_harness::{closed_loop, ClosedLoopOptions};
///
/// let points = closed_loop(&ClosedLoopOptions {
///     sessions: 1_000,
///     duration: Duration::from_millis(50),
///     threads: vec![1, 2],
///     seed: 1,
///     progress: false,
/// })?;
/// assert_eq!(points.len(), 2);
/// assert!(points.iter().all(|p| p.validations_per_sec > 0.0));
/// # Ok::<(), sessionward_core::Error>(())
/// ```
pub fn closed_loop(options: &ClosedLoopOptions) -> Result<Vec<ThroughputPoint>, Error> {
    let (engine, tokens) = populate(options.sessions.max(1), true)?;
    // One contiguous buffer, so that picking a token costs the harness no pointer chase.
    let tokens = Tokens {
        all: tokens.concat(),
        count: tokens.len(),
    };
    let mut bar = options
        .progress
        .then(|| ProgressBar::new(options.threads.len() as u64, "closed loop"));
    let mut points = Vec::new();
    for (done, &threads) in options.threads.iter().enumerate() {
        points.push(measure(
            &engine,
            &tokens,
            threads.max(1),
            options.duration,
            options.seed,
        ));
        if let Some(bar) = bar.as_mut() {
            bar.set(done as u64 + 1);
        }
    }
    if let Some(bar) = bar.as_mut() {
        bar.finish();
    }
    Ok(points)
}

/// Every token back to back (all have [`TOKEN_LEN`] ASCII characters).
struct Tokens {
    all: String,
    count: usize,
}

impl Tokens {
    fn get(&self, index: usize) -> &str {
        &self.all[index * TOKEN_LEN..(index + 1) * TOKEN_LEN]
    }
}

fn measure(
    engine: &Engine,
    tokens: &Tokens,
    threads: usize,
    duration: Duration,
    seed: u64,
) -> ThroughputPoint {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let start = Barrier::new(threads + 1);
    let ip = IpAddr::from(OFFICE);
    let elapsed = std::thread::scope(|scope| {
        for thread in 0..threads {
            let (stop, total, refused, start) = (&stop, &total, &refused, &start);
            scope.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let n = tokens.count as u64;
                let (mut done, mut bad) = (0_u64, 0_u64);
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let pick = ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as usize;
                        if engine
                            .validate(tokens.get(pick), ip, Requirement::Any)
                            .is_err()
                        {
                            bad += 1;
                        }
                    }
                    done += 256;
                }
                total.fetch_add(done, Ordering::Relaxed);
                refused.fetch_add(bad, Ordering::Relaxed);
            });
        }
        start.wait();
        let began = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        began
    })
    .elapsed();
    debug_assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "closed-loop sessions must stay live"
    );
    let secs = elapsed.as_secs_f64();
    let count = total.load(Ordering::Relaxed);
    ThroughputPoint {
        threads,
        validations_per_sec: if secs > 0.0 { count as f64 / secs } else { 0.0 },
        duration_secs: secs,
    }
}
