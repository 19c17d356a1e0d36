//! The durable engine across clean restarts, and every way opening a database can fail.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::*;

const T0: u64 = 1_700_000_000;
const MIN: u64 = 60;
const HOUR: u64 = 3600;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "swd-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("sessions.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &Path, clock: &ManualClock) -> Result<Engine, Error> {
    Engine::builder()
        .path(path)
        .clock(Arc::new(clock.clone()))
        .shards(16)
        .tombstone_retention(Duration::from_secs(2 * HOUR))
        .build()
}

fn seed(engine: &Engine) {
    engine
        .add_profile(Profile::builder("staff").build().unwrap())
        .unwrap();
    engine
        .add_profile(
            Profile::builder("admins")
                .session_timeout(Duration::from_secs(15 * MIN))
                .login_range("10.0.0.0/8")
                .session_cap(2, CapAction::EndOldest)
                .build()
                .unwrap(),
        )
        .unwrap();
    engine
        .add_profile(Profile::builder("temps").build().unwrap())
        .unwrap();
    for (user, profile) in [
        ("ada", "staff"),
        ("bob", "staff"),
        ("root", "admins"),
        ("tim", "temps"),
        ("eve", "staff"),
    ] {
        engine.add_user(user, profile).unwrap();
    }
}

fn login(engine: &Engine, user: &str, from: &str) -> Issued {
    let request = LoginRequest::new(user, ip(from)).method(LoginMethod::Mfa);
    engine.login(&request).unwrap().issued().expect("issued")
}

fn check(engine: &Engine, issued: &Issued, from: &str) -> Result<SessionInfo, Refusal> {
    engine.validate(issued.token.expose_secret(), ip(from), Requirement::Any)
}

fn settings() -> OrgSettings {
    OrgSettings::builder()
        .inactivity_timeout(Duration::from_secs(30 * MIN))
        .lock_sessions_to_ip(true)
        .force_relogin_on_browser_close(true)
        .trusted_range("10.0.0.0/8")
        .high_assurance_operation("setup")
        .build()
        .unwrap()
}

#[test]
fn a_restart_keeps_sessions_ends_policy_and_directory() {
    let dir = TempDir::new("restart");
    let clock = ManualClock::new(T0);
    let engine = Engine::builder()
        .path(dir.db())
        .settings(settings())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    assert!(engine.is_durable());
    seed(&engine);

    let live = login(&engine, "ada", "10.0.0.1");
    let stepped = engine
        .login(&LoginRequest::new("ada", ip("10.0.0.2")))
        .unwrap()
        .issued()
        .unwrap();
    assert_eq!(stepped.session.level, SecurityLevel::Standard);
    engine
        .step_up(
            stepped.token.expose_secret(),
            ip("10.0.0.2"),
            LoginMethod::Mfa,
        )
        .unwrap();
    let admin_end = login(&engine, "ada", "10.0.0.3");
    assert!(engine.end_session(admin_end.session.handle));
    let logged_out = login(&engine, "ada", "10.0.0.4");
    engine.logout(logged_out.token.expose_secret()).unwrap();
    let closed = login(&engine, "ada", "10.0.0.5");
    assert!(engine.browser_closed(closed.token.expose_secret()).unwrap());
    let reset = login(&engine, "bob", "10.0.0.6");
    assert_eq!(engine.reset_password("bob").unwrap(), 1);
    let capped = login(&engine, "root", "10.0.0.7");
    let root2 = login(&engine, "root", "10.0.0.8");
    let root3 = login(&engine, "root", "10.0.0.9");
    let temp = login(&engine, "tim", "10.0.1.1");
    assert_eq!(engine.end_profile_sessions("temps").unwrap(), 1);
    let ranged = login(&engine, "ada", "192.0.2.1");
    assert_eq!(engine.end_sessions_from("192.0.2.0/24".parse().unwrap()), 1);
    let removed = login(&engine, "eve", "10.0.0.10");
    assert_eq!(engine.remove_user("eve").unwrap(), 1);
    engine.move_user("bob", "admins").unwrap();
    // Tightening settings applies to new sessions only; the restart must keep both.
    engine.update_settings(
        settings()
            .to_builder()
            .inactivity_timeout(Duration::from_secs(20 * MIN))
            .build()
            .unwrap(),
    );
    engine
        .update_profile(
            Profile::builder("staff")
                .login_range("10.0.0.0/8")
                .login_range("192.0.2.0/24")
                .build()
                .unwrap(),
        )
        .unwrap();
    let after = login(&engine, "ada", "10.0.0.11");
    assert_eq!(after.session.idle_timeout_secs, 20 * MIN as u32);
    let before_restart = engine.settings();
    assert!(engine.store_error().is_none());
    drop(engine);

    clock.advance(Duration::from_secs(MIN));
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(*engine.settings(), *before_restart);
    assert_eq!(engine.user_count(), 4);
    assert_eq!(engine.user_profile("bob").unwrap().as_ref(), "admins");
    assert!(engine.user_profile("eve").is_err());
    assert_eq!(
        engine.profile("staff").unwrap().login_ranges().len(),
        2,
        "updated profile survives"
    );

    let info = check(&engine, &live, "10.0.0.1").unwrap();
    assert_eq!(info, {
        let mut expected = live.session;
        expected.last_activity = T0 + MIN;
        expected.valid_until = T0 + MIN + 30 * MIN;
        expected
    });
    assert_eq!(engine.user_id(info.user).as_deref(), Some("ada"));
    assert_eq!(engine.profile_name(info.profile).as_deref(), Some("staff"));
    assert!(info.ip_locked && info.browser_bound);
    assert_eq!(check(&engine, &live, "10.0.0.99"), Err(Refusal::IpMismatch));
    let stepped_info = check(&engine, &stepped, "10.0.0.2").unwrap();
    assert_eq!(stepped_info.level, SecurityLevel::HighAssurance);
    for (issued, from, reason) in [
        (&admin_end, "10.0.0.3", EndReason::Admin),
        (&logged_out, "10.0.0.4", EndReason::Logout),
        (&closed, "10.0.0.5", EndReason::BrowserClosed),
        (&reset, "10.0.0.6", EndReason::PasswordReset),
        (&capped, "10.0.0.7", EndReason::SessionCap),
        (&temp, "10.0.1.1", EndReason::ProfileWide),
        (&ranged, "192.0.2.1", EndReason::SourceRange),
        (&removed, "10.0.0.10", EndReason::UserRemoved),
    ] {
        assert_eq!(
            check(&engine, issued, from),
            Err(Refusal::Ended(reason)),
            "{reason}"
        );
    }
    assert!(check(&engine, &root2, "10.0.0.8").is_ok());
    assert!(check(&engine, &root3, "10.0.0.9").is_ok());
    assert_eq!(
        check(&engine, &after, "10.0.0.11")
            .unwrap()
            .idle_timeout_secs,
        20 * MIN as u32
    );
    // The cap still counts root's restored sessions: a third login ends the oldest (root2).
    let root4 = login(&engine, "root", "10.0.0.12");
    assert_eq!(
        check(&engine, &root2, "10.0.0.8"),
        Err(Refusal::Ended(EndReason::SessionCap))
    );
    assert!(check(&engine, &root4, "10.0.0.12").is_ok());
    // Keys are not reused: a new user gets a fresh key, eve's ended session stays hers.
    let key = engine.add_user("zed", "staff").unwrap();
    assert_ne!(Some(key), Some(removed.session.user));
    assert!(
        engine.add_user("ada", "staff").is_err(),
        "ada is still known"
    );
}

#[test]
fn expired_sessions_stay_expired_and_old_tombstones_are_dropped() {
    let dir = TempDir::new("expiry");
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    let short = login(&engine, "root", "10.0.0.1"); // 15 min idle
    let long = login(&engine, "ada", "10.0.0.2"); // 2 h idle
    drop(engine);

    clock.advance(Duration::from_secs(20 * MIN));
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(
        check(&engine, &short, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    assert!(check(&engine, &long, "10.0.0.2").is_ok());
    drop(engine);

    // Past the 2 h retention after the short one expired: it is forgotten, on disk too.
    clock.advance(Duration::from_secs(2 * HOUR));
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(check(&engine, &short, "10.0.0.1"), Err(Refusal::Unknown));
    assert!(check(&engine, &long, "10.0.0.2").is_err());
    assert_eq!(
        engine.stats().records,
        1,
        "long is expired, kept as tombstone"
    );
    drop(engine);
    clock.advance(Duration::from_secs(3 * HOUR));
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(engine.stats().records, 0);
}

/// Found by an audit: a sweep that dropped an ended session's tombstone also deleted its
/// end from the store while the session's row stayed (rows go only once no session that old
/// can be alive), so the next open loaded the row as a live session.
#[test]
fn a_forgotten_tombstone_does_not_come_back_to_life_after_a_restart() {
    let dir = TempDir::new("forgotten");
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    let ended = login(&engine, "ada", "10.0.0.1");
    let idle = login(&engine, "root", "10.0.0.2"); // 15 min idle
    let kept = login(&engine, "bob", "10.0.0.3");
    clock.advance(Duration::from_secs(MIN));
    engine.logout(ended.token.expose_secret()).unwrap();
    // Past the 2 h retention of both the logout (T0 + 1 min) and root's idle expiry (T0 + 15
    // min); bob's first session idled out at T0 + 2 h, so he logs in again.
    clock.advance(Duration::from_secs(2 * HOUR + 20 * MIN));
    assert!(
        check(&engine, &kept, "10.0.0.3").is_err(),
        "bob idled out too"
    );
    let kept = login(&engine, "bob", "10.0.0.3");
    // Bob's login sweeps its own shard first (one in eight times it holds one of the two
    // tombstones), so the count is checked on what remains: bob's two sessions (the first
    // one's tombstone is within its retention).
    engine.sweep_all();
    assert_eq!(engine.stats().records, 2, "{:?}", engine.stats());
    assert_eq!(engine.store_error(), None);
    for issued in [&ended, &idle] {
        assert_eq!(check(&engine, issued, "10.0.0.1"), Err(Refusal::Unknown));
    }
    drop(engine);

    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(check(&engine, &ended, "10.0.0.1"), Err(Refusal::Unknown));
    assert_eq!(check(&engine, &idle, "10.0.0.2"), Err(Refusal::Unknown));
    assert!(
        check(&engine, &kept, "10.0.0.3").is_ok(),
        "nothing live is lost"
    );
    assert_eq!(engine.stats().live, 1);
}

#[test]
fn last_activity_is_written_behind_and_never_later_than_memory() {
    let dir = TempDir::new("activity");
    let clock = ManualClock::new(T0);
    let engine = Engine::builder()
        .path(dir.db())
        .clock(Arc::new(clock.clone()))
        .activity_flush_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    seed(&engine);
    let issued = login(&engine, "root", "10.0.0.1"); // 15 min idle
    clock.advance(Duration::from_secs(10 * MIN));
    assert!(check(&engine, &issued, "10.0.0.1").is_ok());
    // The flusher picks it up within its interval, without any call.
    std::thread::sleep(Duration::from_millis(400));
    clock.advance(Duration::from_secs(10 * MIN));
    // Reading the file through a second store is refused (the file is locked), so check
    // durability the way a crash would: the next engine sees the flushed activity.
    let flushed = check(&engine, &issued, "10.0.0.1").unwrap();
    assert_eq!(flushed.last_activity, T0 + 20 * MIN);
    engine.flush_activity().unwrap();
    drop(engine);

    let engine = open(&dir.db(), &clock).unwrap();
    let info = engine
        .sessions(&SessionFilter::default(), None, 10)
        .unwrap()
        .rows[0]
        .info;
    assert_eq!(info.last_activity, T0 + 20 * MIN);
    clock.advance(Duration::from_secs(15 * MIN));
    assert_eq!(
        check(&engine, &issued, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle)),
        "restored activity never extends the session"
    );
}

#[test]
fn the_database_file_holds_no_token() {
    let dir = TempDir::new("tokens");
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let engine = &engine;
                scope.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let from = format!("10.0.{worker}.{}", i + 1);
                            login(engine, "ada", &from).token.expose_secret().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    clock.advance(Duration::from_secs(MIN));
    for token in &tokens[..100] {
        engine
            .validate(token, ip("10.0.0.1"), Requirement::Any)
            .ok();
    }
    engine.logout(&tokens[0]).unwrap();
    drop(engine);
    let bytes = std::fs::read(dir.db()).unwrap();
    // Every run of base62 characters long enough to hold a token body, checked against the
    // bodies of all issued tokens (one pass over the file).
    let bodies: std::collections::HashSet<&[u8]> = tokens
        .iter()
        .map(|token| &token.as_bytes()[4..47])
        .collect();
    let mut found = 0;
    for run in bytes.split(|byte| !byte.is_ascii_alphanumeric()) {
        if run.len() >= 43 {
            found += run
                .windows(43)
                .filter(|window| bodies.contains(window))
                .count();
        }
    }
    assert_eq!(found, 0, "token bodies found in the database file");
    assert!(!bytes.windows(4).any(|window| window == b"swd_"));
}

fn sample_database(dir: &TempDir, sessions: usize) -> (ManualClock, Vec<Issued>) {
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    // Concurrent logins share commits: quick even in a debug build.
    let issued = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|worker| {
                let engine = &engine;
                scope.spawn(move || {
                    (worker..sessions)
                        .step_by(16)
                        .map(|i| login(engine, "ada", &format!("10.1.{}.{}", i / 250, i % 250 + 1)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    drop(engine);
    (clock, issued)
}

fn assert_names_path(err: &Error, path: &Path) {
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err} does not name {}",
        path.display()
    );
}

#[test]
fn a_flipped_byte_is_an_error_naming_the_path_never_a_shorter_table() {
    let dir = TempDir::new("flip");
    let (clock, issued) = sample_database(&dir, 1500);
    let pristine = std::fs::read(dir.db()).unwrap();
    let copy = dir.0.join("copy.redb");
    let mut errors = 0;
    let mut step = 0;
    // About sixty places spread over the whole file: headers, B-tree pages, free space.
    let stride = pristine.len() / 60 + 7;
    for offset in (0..pristine.len()).step_by(stride) {
        step += 1;
        let mut damaged = pristine.clone();
        damaged[offset] ^= 1 << (step % 8);
        std::fs::write(&copy, &damaged).unwrap();
        match open(&copy, &clock) {
            Err(err) => {
                assert!(
                    matches!(err, Error::StoreCorrupt { .. } | Error::StoreVersion { .. }),
                    "offset {offset}: {err:?}"
                );
                assert_names_path(&err, &copy);
                errors += 1;
            }
            Ok(engine) => {
                // The byte was in free space: everything must still be there.
                assert_eq!(engine.stats().records, issued.len(), "offset {offset}");
                for session in issued.iter().step_by(97) {
                    assert!(
                        check(&engine, session, "10.1.0.1").is_ok() || {
                            // IP lock is off: any address validates; only a missing row fails.
                            false
                        }
                    );
                }
            }
        }
    }
    assert!(errors > 0, "no flip was detected at all");
}

#[test]
fn a_truncated_or_empty_file_is_an_error_naming_the_path() {
    let dir = TempDir::new("truncate");
    let (clock, _) = sample_database(&dir, 500);
    let pristine = std::fs::read(dir.db()).unwrap();
    for len in [0, 1, 100, 4096, pristine.len() / 2, pristine.len() - 1] {
        std::fs::write(dir.db(), &pristine[..len]).unwrap();
        let err = open(&dir.db(), &clock).expect_err(&format!("truncated to {len}"));
        assert!(
            matches!(err, Error::StoreCorrupt { .. }),
            "len {len}: {err:?}"
        );
        assert_names_path(&err, &dir.db());
    }
    // Not a redb file at all.
    std::fs::write(dir.db(), b"hello, this is not a database".repeat(300)).unwrap();
    let err = open(&dir.db(), &clock).unwrap_err();
    assert!(matches!(err, Error::StoreCorrupt { .. }), "{err:?}");
    assert_names_path(&err, &dir.db());
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = TempDir::new("version");
    let (clock, _) = sample_database(&dir, 10);
    {
        let db = redb::Database::open(dir.db()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            meta.insert(
                "format_version",
                (FORMAT_VERSION + 1).to_le_bytes().as_slice(),
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = open(&dir.db(), &clock).unwrap_err();
    assert_eq!(
        err,
        Error::StoreVersion {
            path: dir.db(),
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
    assert_names_path(&err, &dir.db());
    let stated = format!("format version {}", FORMAT_VERSION + 1);
    assert!(err.to_string().contains(&stated), "{err}");
}

/// Rewrites the stored format version of a closed database file.
fn set_format_version(path: &Path, version: u64) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap();
        meta.insert("format_version", version.to_le_bytes().as_slice())
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_version_1_file_keeps_its_org_and_drops_its_sessions() {
    let dir = TempDir::new("migrate");
    let (clock, issued) = sample_database(&dir, 5);
    set_format_version(&dir.db(), 1);
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(engine.user_profile("ada").unwrap().as_ref(), "staff");
    assert_eq!(engine.stats().records, 0, "version-1 sessions are dropped");
    for session in &issued {
        assert_eq!(
            check(&engine, session, "10.1.0.1"),
            Err(Refusal::Unknown),
            "a dropped session does not validate"
        );
    }
    let fresh = login(&engine, "ada", "10.1.0.1");
    drop(engine);
    let engine = open(&dir.db(), &clock).unwrap();
    assert!(
        check(&engine, &fresh, "10.1.0.1").is_ok(),
        "migrated file is version 2"
    );
}

#[test]
fn an_unusable_path_is_an_error_naming_the_path() {
    let dir = TempDir::new("unwritable");
    let clock = ManualClock::new(T0);
    // A path under a regular file cannot be created, even by root.
    let file = dir.0.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("sessions.redb");
    let err = open(&under_file, &clock).unwrap_err();
    assert!(matches!(err, Error::StoreOpen { .. }), "{err:?}");
    assert_names_path(&err, &under_file);
    // A missing directory.
    let missing = dir.0.join("no-such-dir").join("sessions.redb");
    let err = open(&missing, &clock).unwrap_err();
    assert!(matches!(err, Error::StoreOpen { .. }), "{err:?}");
    assert_names_path(&err, &missing);
    // A directory.
    let err = open(&dir.0, &clock).unwrap_err();
    assert!(matches!(err, Error::StoreOpen { .. }), "{err:?}");
    // A second engine on a file in use.
    let first = open(&dir.db(), &clock).unwrap();
    let err = open(&dir.db(), &clock).unwrap_err();
    assert!(matches!(err, Error::StoreOpen { .. }), "{err:?}");
    assert_names_path(&err, &dir.db());
    drop(first);
    assert!(
        open(&dir.db(), &clock).is_ok(),
        "usable once the first is gone"
    );
}

#[test]
fn concurrent_durable_logins_all_survive() {
    let dir = TempDir::new("concurrent");
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..250)
                        .map(|_| {
                            login(&engine, "ada", "10.0.0.1")
                                .token
                                .expose_secret()
                                .to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    drop(engine);
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(engine.stats().live, 2000);
    for token in &tokens {
        assert!(engine
            .validate(token, ip("10.0.0.1"), Requirement::Any)
            .is_ok());
    }
}

// ----- remembered devices ----------------------------------------------------------------------

/// A standard login from outside the trusted ranges: challenged unless the device is
/// remembered.
fn login_from_device(engine: &Engine, user: &str, device: &str) -> LoginOutcome {
    engine
        .login(&LoginRequest::new(user, ip("203.0.113.5")).device(device))
        .unwrap()
}

fn remember(engine: &Engine, user: &str, device: &str) {
    let LoginOutcome::ChallengeRequired(challenge) = login_from_device(engine, user, device) else {
        panic!("{user} on {device} should be challenged");
    };
    assert!(matches!(
        engine
            .complete_challenge(challenge.secret.expose_secret(), true)
            .unwrap(),
        LoginOutcome::Issued(_)
    ));
}

fn is_remembered(engine: &Engine, user: &str, device: &str) -> bool {
    match login_from_device(engine, user, device) {
        LoginOutcome::Issued(_) => true,
        LoginOutcome::ChallengeRequired(_) => false,
        other => panic!("{user} on {device}: {other:?}"),
    }
}

#[test]
fn remembered_devices_survive_a_restart_oldest_forgotten_first() {
    let dir = TempDir::new("devices");
    let clock = ManualClock::new(T0);
    let devices: Vec<String> = (0..=MAX_REMEMBERED_DEVICES)
        .map(|n| format!("device-{n}"))
        .collect();
    {
        let engine = open(&dir.db(), &clock).unwrap();
        seed(&engine);
        // One more than the cap: device-0 is forgotten before the restart.
        devices
            .iter()
            .for_each(|device| remember(&engine, "ada", device));
        remember(&engine, "bob", "bob-laptop");
    }
    let engine = open(&dir.db(), &clock).unwrap();
    assert!(!is_remembered(&engine, "ada", "device-0"));
    assert!(devices[1..]
        .iter()
        .all(|device| is_remembered(&engine, "ada", device)));
    assert!(!is_remembered(&engine, "ada", "bob-laptop"), "per user");
    assert!(is_remembered(&engine, "bob", "bob-laptop"));
    // The order came back too: one more forgets device-1, now the oldest.
    remember(&engine, "ada", "device-new");
    assert!(!is_remembered(&engine, "ada", "device-1"));
    assert!(is_remembered(&engine, "ada", "device-2"));
    drop(engine);
    let engine = open(&dir.db(), &clock).unwrap();
    assert!(!is_remembered(&engine, "ada", "device-1"));
    assert!(is_remembered(&engine, "ada", "device-new"));
}

#[test]
fn a_removed_users_devices_leave_the_store_with_it() {
    let dir = TempDir::new("devices-removed");
    let clock = ManualClock::new(T0);
    {
        let engine = open(&dir.db(), &clock).unwrap();
        seed(&engine);
        remember(&engine, "bob", "bob-laptop");
        engine.remove_user("bob").unwrap();
        // The same id again is a new user, with a new key.
        engine.add_user("bob", "staff").unwrap();
        assert!(!is_remembered(&engine, "bob", "bob-laptop"));
    }
    let store = RedbStore::open(dir.db()).unwrap();
    let state = store.load(T0, 3600).unwrap();
    assert!(
        state.remembered_devices.is_empty(),
        "the list went with the user"
    );
    drop(store);
    let engine = open(&dir.db(), &clock).unwrap();
    assert!(!is_remembered(&engine, "bob", "bob-laptop"));
}

#[test]
fn the_database_file_holds_no_device_id() {
    let dir = TempDir::new("devices-file");
    let clock = ManualClock::new(T0);
    let device = "device-id-7f3a9c1e5b";
    {
        let engine = open(&dir.db(), &clock).unwrap();
        seed(&engine);
        remember(&engine, "ada", device);
    }
    let bytes = std::fs::read(dir.db()).unwrap();
    assert!(!bytes
        .windows(device.len())
        .any(|window| window == device.as_bytes()));
    assert!(is_remembered(
        &open(&dir.db(), &clock).unwrap(),
        "ada",
        device
    ));
}

/// A store that fails every commit after the first `ok` ones.
#[derive(Debug)]
struct FailingStore {
    ok: AtomicUsize,
}

impl SessionStore for FailingStore {
    fn load(&self, _now: u64, _retention: u32) -> Result<StoredState, Error> {
        Ok(StoredState::default())
    }
    fn commit(&self, _changes: Vec<StoreChange>) -> Result<(), Error> {
        if self
            .ok
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            Ok(())
        } else {
            Err(Error::StoreWrite {
                path: "/test/failing".into(),
                reason: "disk full".into(),
            })
        }
    }
}

#[test]
fn a_failed_commit_hands_out_no_token_and_is_reported() {
    let clock = ManualClock::new(T0);
    // Settings, 3 profiles, 5 users, one login.
    let store = Arc::new(FailingStore {
        ok: AtomicUsize::new(1 + 3 + 5 + 1),
    });
    let engine = Engine::builder()
        .store(store)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    seed(&engine);
    let issued = login(&engine, "ada", "10.0.0.1");
    let err = engine
        .login(&LoginRequest::new("ada", ip("10.0.0.1")).method(LoginMethod::Mfa))
        .unwrap_err();
    assert!(matches!(err, Error::StoreWrite { .. }), "{err:?}");
    assert_eq!(engine.stats().records, 1, "the undurable session is gone");
    assert!(engine.store_error().is_none());
    // An end whose signature cannot carry the error still takes effect, and is reported.
    assert!(engine.end_session(issued.session.handle));
    assert_eq!(
        check(&engine, &issued, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::Admin))
    );
    assert!(matches!(
        engine.store_error(),
        Some(Error::StoreWrite { .. })
    ));
    assert!(engine.add_user("new", "staff").is_err());
    assert!(engine.user_profile("new").is_err(), "nothing changed");
}

// ----- a real commit failure in the redb store ---------------------------------------------------
//
// The test above replaces the store. This one makes the real `RedbStore` fail: a child process
// caps the size of the files it may write (`RLIMIT_FSIZE`), so the first commit that needs the
// database file to grow fails inside redb with `EFBIG`, the way a full disk fails with
// `ENOSPC`. A child, because the limit applies to the whole process and the other tests of this
// binary write files concurrently.

#[cfg(target_os = "linux")]
const FILE_LIMIT_CHILD_DB: &str = "SESSIONWARD_FILE_LIMIT_CHILD_DB";

/// Sets the soft `RLIMIT_FSIZE` of this process (`None`: back to the hard limit) and ignores
/// `SIGXFSZ`, so a write past the limit fails with `EFBIG` instead of killing the process.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // getrlimit/setrlimit/signal: process settings std does not expose
fn limit_file_size(bytes: Option<u64>) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit; SIG_IGN is a valid disposition; nothing
    // is kept past the calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.map_or(limit.rlim_max, |bytes| bytes as libc::rlim_t);
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// Not a test: the child of `a_failed_redb_commit_reaches_the_caller_changes_nothing_and_latches`.
#[cfg(target_os = "linux")]
#[test]
fn file_limit_child_helper() {
    let Some(path) = std::env::var_os(FILE_LIMIT_CHILD_DB) else {
        return;
    };
    file_limit_child(Path::new(&path));
}

#[cfg(target_os = "linux")]
fn file_limit_child(path: &Path) {
    let clock = ManualClock::new(T0);
    let engine = open(path, &clock).unwrap();
    seed(&engine);
    let kept = login(&engine, "ada", "10.0.0.1");
    let ended = login(&engine, "bob", "10.0.0.2");
    limit_file_size(Some(std::fs::metadata(path).unwrap().len()));

    // Logins from several threads until the file has to grow: the batch that needs the growth
    // fails, and so does every batch queued behind it. Each thread stops at its first error;
    // none may be left waiting.
    let (issued, errors): (Vec<Vec<Issued>>, Vec<Error>) = std::thread::scope(|scope| {
        // Many threads: bigger batches, fewer fsyncs before the file is full.
        let workers: Vec<_> = (0..64)
            .map(|worker| {
                let engine = &engine;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..1_000_000_u32 {
                        let from = ip(&format!("10.{worker}.{}.{}", i / 250 % 250, i % 250 + 1));
                        let request = LoginRequest::new("eve", from).method(LoginMethod::Mfa);
                        match engine.login(&request) {
                            Ok(outcome) => mine.push(outcome.issued().expect("issued")),
                            Err(err) => return (mine, err),
                        }
                    }
                    panic!("the database never reached the file size limit");
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .unzip()
    });
    let issued: Vec<Issued> = issued.into_iter().flatten().collect();
    for err in &errors {
        assert!(matches!(err, Error::StoreWrite { .. }), "{err:?}");
        assert_names_path(err, path);
    }
    assert_eq!(
        engine.stats().records,
        2 + issued.len(),
        "a login whose commit failed leaves no session behind"
    );
    assert!(
        engine.store_error().is_none(),
        "errors the caller received are not also kept"
    );

    // Space again; the store still refuses every commit until it is reopened.
    limit_file_size(None);
    let err = engine
        .login(&LoginRequest::new("eve", ip("10.0.0.9")).method(LoginMethod::Mfa))
        .unwrap_err();
    assert!(matches!(err, Error::StoreWrite { .. }), "{err:?}");
    assert_eq!(engine.stats().records, 2 + issued.len());
    assert!(matches!(
        engine.add_user("new", "staff"),
        Err(Error::StoreWrite { .. })
    ));
    assert!(
        engine.user_profile("new").is_err(),
        "the directory did not change"
    );
    // The write-behind is refused as well.
    clock.advance(Duration::from_secs(MIN));
    assert!(check(&engine, &kept, "10.0.0.1").is_ok());
    assert!(matches!(
        engine.flush_activity(),
        Err(Error::StoreWrite { .. })
    ));
    // An end whose signature cannot carry the error applies in memory and is reported.
    assert!(engine.end_session(ended.session.handle));
    assert_eq!(
        check(&engine, &ended, "10.0.0.2"),
        Err(Refusal::Ended(EndReason::Admin))
    );
    let reported = engine.store_error().expect("the failed end is reported");
    assert!(matches!(reported, Error::StoreWrite { .. }), "{reported:?}");
    assert_names_path(&reported, path);
    drop(engine);

    // Reopened: exactly the sessions whose login returned, nothing of what failed.
    let engine = open(path, &clock).unwrap();
    assert!(check(&engine, &kept, "10.0.0.1").is_ok());
    for session in &issued {
        let from = session.session.source_ip.to_string();
        assert!(
            check(&engine, session, &from).is_ok(),
            "a login that returned before the failure survives"
        );
    }
    assert_eq!(engine.stats().records, 2 + issued.len());
    assert!(engine.user_profile("new").is_err());
    println!(
        "CHECKED {} logins durable, {} refused at the file size limit: {}",
        issued.len(),
        errors.len(),
        errors[0]
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_redb_commit_reaches_the_caller_changes_nothing_and_latches() {
    let dir = TempDir::new("file-limit");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "file_limit_child_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FILE_LIMIT_CHILD_DB, dir.db())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The child prints no token: its messages name handles and counts only.
    assert!(
        output.status.success() && stdout.contains("CHECKED"),
        "the child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let checked = stdout
        .split("CHECKED")
        .nth(1)
        .and_then(|rest| rest.lines().next());
    eprintln!("  {}", checked.unwrap_or_default());
}

#[test]
fn oauth_clients_and_grants_survive_a_restart() {
    let dir = TempDir::new("oauth");
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    engine.add_user("erp-bot", "staff").unwrap();
    let clients = engine.oauth_clients();
    let erp = clients
        .register("erp", "erp-bot", ["orders.read", "orders.write"])
        .unwrap();
    let gone = clients.register("gone", "erp-bot", ["a"]).unwrap();
    let here = ip("10.0.0.9");
    let read_only = clients
        .grant(
            &engine,
            "erp",
            erp.expose_secret(),
            Some("orders.read"),
            here,
        )
        .unwrap();
    let both = clients
        .grant(&engine, "erp", erp.expose_secret(), None, here)
        .unwrap();
    let revoked = clients
        .grant(&engine, "gone", gone.expose_secret(), None, here)
        .unwrap();
    assert_eq!(clients.revoke(&engine, "gone"), 1);
    assert_eq!(clients.remove("gone"), Ok(true));
    assert_eq!(engine.store_error(), None);
    drop(engine);

    let engine = open(&dir.db(), &clock).unwrap();
    let clients = engine.oauth_clients();
    let listed: Vec<_> = clients.list().into_iter().map(|c| c.client_id).collect();
    assert_eq!(listed, ["erp"], "the removed client stays removed");
    // The secret registered before the restart still works; the removed client's does not.
    assert!(clients
        .grant(
            &engine,
            "erp",
            erp.expose_secret(),
            Some("orders.write"),
            here
        )
        .is_ok());
    assert_eq!(
        clients
            .grant(&engine, "gone", gone.expose_secret(), None, here)
            .unwrap_err()
            .code(),
        "invalid_client"
    );
    // Tokens granted before the restart keep exactly their scopes.
    let token = |grant: &Grant| grant.access_token.expose_secret().to_owned();
    let authorized = clients
        .authorize(&engine, &token(&read_only), here, Some("orders.read"))
        .unwrap();
    assert_eq!(authorized.client_id, "erp");
    assert_eq!(authorized.scopes, ["orders.read"]);
    assert_eq!(
        clients
            .authorize(&engine, &token(&read_only), here, Some("orders.write"))
            .unwrap_err()
            .code(),
        "insufficient_scope"
    );
    assert!(clients
        .authorize(
            &engine,
            &token(&both),
            here,
            Some("orders.read orders.write")
        )
        .is_ok());
    assert!(clients
        .authorize(&engine, &token(&revoked), here, None)
        .is_err());
}

#[test]
fn oauth_grants_leave_the_store_with_their_sessions() {
    let dir = TempDir::new("oauth-forget");
    let clock = ManualClock::new(T0);
    let engine = open(&dir.db(), &clock).unwrap();
    seed(&engine);
    engine.add_user("erp-bot", "staff").unwrap();
    let secret = engine
        .oauth_clients()
        .register("erp", "erp-bot", ["a"])
        .unwrap();
    let old = engine
        .oauth_clients()
        .grant(&engine, "erp", secret.expose_secret(), None, ip("10.0.0.9"))
        .unwrap();
    drop(engine);
    // Past the session's length and the tombstone retention: the session and its grant are
    // gone, and a new token granted now carries its own scopes only.
    clock.advance(Duration::from_secs(30 * HOUR));
    let engine = open(&dir.db(), &clock).unwrap();
    assert_eq!(engine.stats().records, 0);
    let clients = engine.oauth_clients();
    assert_eq!(
        clients
            .authorize(
                &engine,
                old.access_token.expose_secret(),
                ip("10.0.0.9"),
                None
            )
            .unwrap_err()
            .code(),
        "invalid_token"
    );
    assert!(clients
        .grant(&engine, "erp", secret.expose_secret(), None, ip("10.0.0.9"))
        .is_ok());
    assert!(
        format!("{clients:?}").contains("granted: 1"),
        "only the new grant is held"
    );
}
