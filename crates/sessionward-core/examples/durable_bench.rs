//! Durable against memory-only throughput: logins (group commit), OAuth client-credentials
//! grants and validations.
//!
//! `cargo run --release -p sessionward-core --example durable_bench -- [threads] [seconds]`
//! prints logins/s (default 64 threads: concurrent logins share one commit), grants/s (one
//! thread, so one grant per commit: the inverse of a durable grant's latency; then `threads`)
//! and validations/s (all cores, 100,000 sessions) for a memory-only engine and for one on a
//! redb file in the system temp directory (removed afterwards).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sessionward_core::{Engine, LoginMethod, LoginRequest, Profile, Requirement};

fn engine(path: Option<&std::path::Path>) -> Engine {
    let mut builder = Engine::builder();
    if let Some(path) = path {
        builder = builder.path(path);
    }
    let engine = builder.build().expect("engine");
    if engine.profile_names().is_empty() {
        engine
            .add_profile(Profile::builder("staff").build().unwrap())
            .unwrap();
        for user in 0..1000 {
            engine.add_user(&format!("user{user}"), "staff").unwrap();
        }
    }
    engine
}

/// Runs `work` on `threads` threads for `seconds`; returns operations per second.
fn run(threads: usize, seconds: f64, work: impl Fn(usize, u64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (stop, done, work) = (&stop, &done, &work);
            scope.spawn(move || {
                let mut count = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..16 {
                        work(thread, count);
                        count += 1;
                    }
                }
                done.fetch_add(count, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn measure_logins(name: &str, engine: &Engine, threads: usize, seconds: f64) {
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let logins = run(threads, seconds, |thread, count| {
        let user = format!("user{}", (thread * 7919 + count as usize) % 1000);
        let request = LoginRequest::new(&user, ip).method(LoginMethod::Mfa);
        engine
            .login(&request)
            .expect("login")
            .issued()
            .expect("issued");
    });
    println!("{name:<12} logins/s      ({threads} threads): {logins:>10.0}");
}

/// Client-credentials grants of one client (run as `user0`) on `threads` threads.
fn measure_grants(name: &str, engine: &Engine, threads: usize, seconds: f64) {
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let clients = engine.oauth_clients();
    let secret = clients
        .register("bench", "user0", ["read"])
        .expect("register");
    let grants = run(threads, seconds, |_, _| {
        clients
            .grant(engine, "bench", secret.expose_secret(), None, ip)
            .expect("grant");
    });
    println!("{name:<12} grants/s      ({threads} threads): {grants:>10.0}");
}

/// Validations over the same 100,000 sessions (logged in concurrently, so that a durable
/// engine groups them), on a fresh engine so both variants hold the same table.
fn measure_validations(name: &str, engine: &Engine, seconds: f64) {
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..64)
            .map(|thread| {
                scope.spawn(move || {
                    (thread..100_000)
                        .step_by(64)
                        .map(|i| {
                            let user = format!("user{}", i % 1000);
                            let request = LoginRequest::new(&user, ip).method(LoginMethod::Mfa);
                            let issued = engine.login(&request).unwrap().issued().unwrap();
                            issued.token.expose_secret().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let validations = run(threads, seconds, |thread, count| {
        let token = &tokens[(thread * 50_021 + count as usize * 7919) % tokens.len()];
        engine
            .validate(token, ip, Requirement::Any)
            .expect("valid session");
    });
    println!("{name:<12} validations/s ({threads} threads): {validations:>10.0}");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let dir = std::env::temp_dir().join(format!("swd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    measure_logins("memory-only", &engine(None), threads, seconds);
    measure_logins(
        "durable",
        &engine(Some(&dir.join("logins.redb"))),
        threads,
        seconds,
    );
    for grant_threads in [1, threads] {
        measure_grants("memory-only", &engine(None), grant_threads, seconds);
        let path = dir.join(format!("grants-{grant_threads}.redb"));
        measure_grants("durable", &engine(Some(&path)), grant_threads, seconds);
    }
    measure_validations("memory-only", &engine(None), seconds);
    measure_validations(
        "durable",
        &engine(Some(&dir.join("sessions.redb"))),
        seconds,
    );
    let size = std::fs::metadata(dir.join("sessions.redb")).map_or(0, |m| m.len());
    println!("database file: {:.1} MiB", size as f64 / (1 << 20) as f64);
    std::fs::remove_dir_all(&dir).ok();
}
