//! `kill -9` a process mid-load, reopen its database, and check that nothing it returned was
//! lost: every session whose login returned is valid with its snapshotted policy, every end
//! that returned stays ended, expired sessions stay expired, the OAuth client's latest secret
//! still works and every access token granted keeps its scopes.
//!
//! The child is this same test binary, re-run with `crash_child_helper` selected and the
//! database path in an environment variable. It prints every operation once it has returned
//! (tokens included: the pipe is read by the parent only, never echoed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionward_core::*;

const CHILD_DB: &str = "SESSIONWARD_CRASH_CHILD_DB";
const T0: u64 = 1_700_000_000;
const RETENTION: Duration = Duration::from_secs(24 * 3600);

fn open(path: &Path, clock: &ManualClock) -> Result<Engine, Error> {
    Engine::builder()
        .path(path)
        .clock(Arc::new(clock.clone()))
        .shards(16)
        .tombstone_retention(RETENTION)
        .activity_flush_interval(Duration::from_millis(100))
        .build()
}

fn settings(idle_minutes: u64) -> OrgSettings {
    OrgSettings::builder()
        .inactivity_timeout(Duration::from_secs(idle_minutes * 60))
        .trusted_range("10.0.0.0/8")
        .build()
        .unwrap()
}

/// Not a test: the child process. Does nothing unless started by `kill_nine_mid_load`.
#[test]
fn crash_child_helper() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    child(Path::new(&path));
}

struct Live {
    token: String,
    user: usize,
    ip: IpAddr,
    /// Login order: the cap ends the user's oldest session.
    seq: u64,
}

fn child(path: &Path) {
    let clock = ManualClock::new(T0);
    let engine = Engine::builder()
        .path(path)
        .settings(settings(120))
        .clock(Arc::new(clock.clone()))
        .tombstone_retention(RETENTION)
        .activity_flush_interval(Duration::from_millis(100))
        .build()
        .expect("child opens the database");
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut say = |line: String| {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    // End the test harness's "test crash_child_helper ... " line.
    say(String::new());
    engine
        .add_profile(Profile::builder("staff").build().unwrap())
        .unwrap();
    engine
        .add_profile(
            Profile::builder("capped")
                .session_timeout(Duration::from_secs(15 * 60))
                .session_cap(2, CapAction::EndOldest)
                .build()
                .unwrap(),
        )
        .unwrap();
    engine
        .add_profile(Profile::builder("temps").build().unwrap())
        .unwrap();
    let users: Vec<(String, &str)> = (0..12)
        .map(|i| {
            let profile = ["staff", "staff", "capped", "temps"][i % 4];
            (format!("user{i}"), profile)
        })
        .collect();
    for (user, profile) in &users {
        engine.add_user(user, profile).unwrap();
    }
    // The OAuth client's integration user, in a profile no profile-wide end touches.
    engine
        .add_profile(Profile::builder("integrations").build().unwrap())
        .unwrap();
    engine.add_user("bot", "integrations").unwrap();
    let clients = engine.oauth_clients();
    let mut secret = clients.register("erp", "bot", ["read", "write"]).unwrap();
    say(format!("C {}", secret.expose_secret()));
    let mut granted: Vec<String> = Vec::new();
    let mut live: Vec<Live> = Vec::new();
    let issue = |engine: &Engine, user: usize, ip: IpAddr, method| {
        let request = LoginRequest::new(&users[user].0, ip).method(method);
        engine.login(&request).unwrap().issued().unwrap()
    };
    let describe = |issued: &Issued, user: usize| {
        let info = issued.session;
        format!(
            "L {} {} {} {} {} {} {} {}",
            issued.token.expose_secret(),
            user,
            info.source_ip,
            info.created,
            info.idle_timeout_secs,
            info.absolute_deadline,
            info.level as u8,
            info.valid_until
        )
    };
    // Sessions that will be expired before the load starts.
    for user in 0..3 {
        let issued = issue(&engine, user, "10.9.9.9".parse().unwrap(), LoginMethod::Mfa);
        say(describe(&issued, user));
    }
    clock.advance(Duration::from_secs(3 * 3600));
    say(format!("T {}", clock.now()));
    say("READY".into());

    let mut rng: u64 = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % bound as u64) as usize
    };
    let mut idle_minutes = 120;
    for op in 0_u64.. {
        if op % 25 == 24 {
            clock.advance(Duration::from_secs(1));
            say(format!("T {}", clock.now()));
        }
        let pick = next(100);
        if (40..45).contains(&pick) {
            if next(4) == 0 {
                say("B register".into());
                secret = clients.register("erp", "bot", ["read", "write"]).unwrap();
                say(format!("C {}", secret.expose_secret()));
            } else {
                say("B grant".into());
                let scope = [Some("read"), Some("write"), None][next(3)];
                let ip: IpAddr = format!("10.1.{}.{}", next(200), next(200) + 1)
                    .parse()
                    .unwrap();
                let grant = clients
                    .grant(&engine, "erp", secret.expose_secret(), scope, ip)
                    .unwrap();
                let token = grant.access_token.expose_secret().to_owned();
                say(format!("G {token} {ip} {}", grant.scopes.join(",")));
                granted.push(token);
            }
            say("D".into());
            continue;
        }
        if pick < 40 || live.is_empty() {
            let user = next(users.len());
            let (ip, method): (IpAddr, _) = if next(4) == 0 {
                (
                    format!("192.0.2.{}", next(200) + 1).parse().unwrap(),
                    LoginMethod::Mfa,
                )
            } else {
                (
                    format!("10.0.{}.{}", next(200), next(200) + 1)
                        .parse()
                        .unwrap(),
                    LoginMethod::Password,
                )
            };
            say("B login".into());
            let issued = issue(&engine, user, ip, method);
            say(describe(&issued, user));
            live.push(Live {
                token: issued.token.expose_secret().to_owned(),
                user,
                ip,
                seq: op,
            });
            if users[user].1 == "capped" {
                let mine: Vec<usize> = (0..live.len()).filter(|&i| live[i].user == user).collect();
                if mine.len() > 2 {
                    let oldest = *mine.iter().min_by_key(|&&i| live[i].seq).unwrap();
                    let oldest = live.swap_remove(oldest);
                    say(format!("E {} session_cap", oldest.token));
                }
            }
            say("D".into());
            continue;
        }
        let at = next(live.len());
        match pick {
            45..=54 => {
                say("B logout".into());
                let gone = live.swap_remove(at);
                engine.logout(&gone.token).unwrap();
                say(format!("E {} logout", gone.token));
            }
            55..=64 => {
                say("B admin".into());
                let gone = live.swap_remove(at);
                let info = engine
                    .validate(&gone.token, gone.ip, Requirement::Any)
                    .unwrap();
                say(format!("V {} {}", gone.token, info.valid_until));
                assert!(engine.end_session(info.handle));
                say(format!("E {} admin", gone.token));
            }
            65..=74 => {
                let session = &live[at];
                let info = engine
                    .validate(&session.token, session.ip, Requirement::Any)
                    .unwrap();
                say(format!("V {} {}", session.token, info.valid_until));
                continue;
            }
            75..=81 => {
                say("B step_up".into());
                let session = &live[at];
                // A step-up is a successful validation: it refreshes last activity too.
                let info = engine
                    .step_up(&session.token, session.ip, LoginMethod::Mfa)
                    .unwrap();
                say(format!("V {} {}", session.token, info.valid_until));
                say(format!("S {}", session.token));
            }
            82..=86 => {
                let user = live[at].user;
                say("B password_reset".into());
                engine.reset_password(&users[user].0).unwrap();
                for gone in extract(&mut live, |s| s.user == user) {
                    say(format!("E {} password_reset", gone.token));
                }
            }
            87..=90 => {
                say("B profile_wide".into());
                engine.end_profile_sessions("temps").unwrap();
                for gone in extract(&mut live, |s| users[s.user].1 == "temps") {
                    say(format!("E {} profile_wide", gone.token));
                }
            }
            91..=94 => {
                say("B source_range".into());
                engine.end_sessions_from("192.0.2.0/24".parse().unwrap());
                let range: IpNet = "192.0.2.0/24".parse().unwrap();
                for gone in extract(&mut live, |s| range.contains(&s.ip)) {
                    say(format!("E {} source_range", gone.token));
                }
            }
            95..=97 => {
                idle_minutes = if idle_minutes == 120 { 90 } else { 120 };
                say(format!("B settings {idle_minutes}"));
                engine.update_settings(settings(idle_minutes));
                say(format!("SET {idle_minutes}"));
            }
            _ if next(4) > 0 => continue,
            _ => {
                say("B org_wide".into());
                engine.end_all_sessions();
                for gone in live.drain(..) {
                    say(format!("E {} org_wide", gone.token));
                }
                for gone in granted.drain(..) {
                    say(format!("GE {gone}"));
                }
            }
        }
        say("D".into());
    }
}

fn extract(live: &mut Vec<Live>, matches: impl Fn(&Live) -> bool) -> Vec<Live> {
    let (gone, kept) = std::mem::take(live).into_iter().partition(|s| matches(s));
    *live = kept;
    gone
}

/// What the parent learnt from the child's output.
#[derive(Clone, Debug)]
enum Known {
    Live {
        ip: IpAddr,
        created: u64,
        idle: u32,
        absolute: u64,
        level: u8,
        /// Latest `valid_until` the child saw: a restart may only move it earlier.
        valid_until: u64,
    },
    Ended(EndReason),
    Expired,
}

struct Outcome {
    sessions: HashMap<String, Known>,
    /// The OAuth client's latest secret whose registration returned.
    client_secret: String,
    /// Access tokens granted and not ended: the address they were granted from, their scopes.
    grants: HashMap<String, (IpAddr, String)>,
    /// The operation that had begun but not returned when the child died.
    in_flight: Option<String>,
    now: u64,
    settings_minutes: u64,
    ops: usize,
}

fn parse(lines: &[String]) -> Outcome {
    let mut outcome = Outcome {
        sessions: HashMap::new(),
        client_secret: String::new(),
        grants: HashMap::new(),
        in_flight: None,
        now: T0,
        settings_minutes: 120,
        ops: 0,
    };
    let reason = |code: &str| {
        EndReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == code)
            .unwrap()
    };
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        match words[0] {
            "L" => {
                outcome.sessions.insert(
                    words[1].to_owned(),
                    Known::Live {
                        ip: words[3].parse().unwrap(),
                        created: words[4].parse().unwrap(),
                        idle: words[5].parse().unwrap(),
                        absolute: words[6].parse().unwrap(),
                        level: words[7].parse().unwrap(),
                        valid_until: words[8].parse().unwrap(),
                    },
                );
            }
            "E" => {
                outcome
                    .sessions
                    .insert(words[1].to_owned(), Known::Ended(reason(words[2])));
            }
            "S" => {
                if let Some(Known::Live { level, .. }) = outcome.sessions.get_mut(words[1]) {
                    *level = SecurityLevel::HighAssurance as u8;
                }
            }
            "V" => {
                if let Some(Known::Live { valid_until, .. }) = outcome.sessions.get_mut(words[1]) {
                    *valid_until = (*valid_until).max(words[2].parse().unwrap());
                }
            }
            "T" => {
                outcome.now = words[1].parse().unwrap();
                if outcome.now == T0 + 3 * 3600 && outcome.ops == 0 {
                    // The first sessions expired (2 h idle) when the clock jumped.
                    for known in outcome.sessions.values_mut() {
                        *known = Known::Expired;
                    }
                }
            }
            "SET" => outcome.settings_minutes = words[1].parse().unwrap(),
            "C" => outcome.client_secret = words[1].to_owned(),
            "G" => {
                let scopes = words.get(3).copied().unwrap_or("").replace(',', " ");
                outcome
                    .grants
                    .insert(words[1].to_owned(), (words[2].parse().unwrap(), scopes));
            }
            "GE" => {
                outcome.grants.remove(words[1]);
            }
            "B" => {
                outcome.in_flight = Some(words[1..].join(" "));
                outcome.ops += 1;
            }
            "D" => outcome.in_flight = None,
            _ => {}
        }
    }
    // A last end line may have been printed for part of a bulk end: the whole op is in flight
    // either way, and its printed ends did return from the engine.
    outcome
}

fn check(path: &Path, outcome: &Outcome) {
    let clock = ManualClock::new(outcome.now);
    let engine = open(path, &clock).unwrap_or_else(|err| panic!("reopen after kill -9: {err}"));
    assert_eq!(engine.user_count(), 13, "directory survived");
    let minutes = engine.settings().inactivity_timeout().as_secs() / 60;
    let in_flight = outcome.in_flight.as_deref().unwrap_or("");
    assert!(
        minutes == outcome.settings_minutes || in_flight.starts_with("settings"),
        "settings: {minutes} min, expected {}",
        outcome.settings_minutes
    );
    // Valid-until as stored, before any validation refreshes it.
    let mut stored = HashMap::new();
    let mut after = None;
    loop {
        let page = engine
            .sessions(&SessionFilter::default(), after, MAX_PAGE_SIZE)
            .unwrap();
        for row in &page.rows {
            stored.insert(row.info.handle, row.info);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    // A bulk end in flight may have ended any live session with its reason.
    let in_flight_reason = EndReason::ALL
        .into_iter()
        .find(|reason| in_flight == reason.as_str());
    let (mut live, mut ended, mut expired) = (0, 0, 0);
    for (token, known) in &outcome.sessions {
        match known {
            Known::Live {
                ip,
                created,
                idle,
                absolute,
                level,
                valid_until,
            } => {
                let result = engine.validate(token, *ip, Requirement::Any);
                let info = match result {
                    Ok(info) => info,
                    Err(Refusal::Ended(reason))
                        if Some(reason) == in_flight_reason
                            || matches!(
                                (reason, in_flight),
                                (EndReason::Logout, "logout")
                                    | (EndReason::Admin, "admin")
                                    | (EndReason::SessionCap, "login")
                            ) =>
                    {
                        continue
                    }
                    Err(refusal) => panic!("a session whose login returned: {refusal:?}"),
                };
                live += 1;
                assert_eq!(
                    (info.created, info.idle_timeout_secs, info.absolute_deadline),
                    (*created, *idle, *absolute),
                    "snapshotted policy"
                );
                assert!(
                    info.level as u8 >= *level,
                    "a step-up that returned is kept"
                );
                let before = stored.get(&info.handle).expect("listed while live");
                assert!(
                    before.valid_until <= *valid_until,
                    "a restart never extends a session: {} > {valid_until}",
                    before.valid_until
                );
                assert!(before.valid_until >= created + u64::from(*idle).min(absolute - created));
            }
            Known::Ended(reason) => {
                ended += 1;
                assert_eq!(
                    engine.validate(token, "10.0.0.1".parse().unwrap(), Requirement::Any),
                    Err(Refusal::Ended(*reason)),
                    "an end that returned"
                );
            }
            Known::Expired => {
                expired += 1;
                assert!(
                    matches!(
                        engine.validate(token, "10.9.9.9".parse().unwrap(), Requirement::Any),
                        Err(Refusal::Expired(_))
                    ),
                    "expired stays expired"
                );
            }
        }
    }
    // The OAuth registry: every grant that returned keeps its scopes (unless the org-wide end
    // in flight took it), and the latest secret whose registration returned still works (a
    // rotation in flight may have landed: then only the new, unprinted secret does).
    let clients = engine.oauth_clients();
    for (token, (ip, scopes)) in &outcome.grants {
        match clients.authorize(&engine, token, *ip, Some(scopes)) {
            Ok(authorized) => assert_eq!(authorized.scopes.join(" "), *scopes),
            Err(AuthorizeError::Session(Refusal::Ended(EndReason::OrgWide)))
                if in_flight == "org_wide" => {}
            Err(err) => panic!("a grant that returned: {err:?}"),
        }
    }
    if in_flight != "register" {
        let ip = "10.1.0.1".parse().unwrap();
        assert!(
            clients
                .grant(&engine, "erp", &outcome.client_secret, None, ip)
                .is_ok(),
            "the latest secret that returned"
        );
    }
    eprintln!(
        "  {} ops: {live} live, {ended} ended, {expired} expired, {} grants checked; in flight: {in_flight:?}",
        outcome.ops,
        outcome.grants.len()
    );
}

/// Runs this test binary's `helper` test as a child process on the database at `path` (passed
/// in the environment variable `db_variable`); returns the child, the whole lines of its
/// standard output as they come, and the thread reading them.
fn spawn_child(
    helper: &str,
    db_variable: &str,
    path: &Path,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([helper, "--exact", "--nocapture", "--test-threads=1"])
        .env(db_variable, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, received) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        // Only whole lines count: a line cut by the kill was never "returned".
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') && send.send(line.trim_end().to_owned()).is_err() {
                break;
            }
            line.clear();
        }
    });
    (child, received, reader)
}

#[test]
fn kill_nine_mid_load_loses_nothing_that_returned() {
    let base = std::env::temp_dir().join(format!("swd-crash-{}", std::process::id()));
    // Kill points are events, not delays (a loaded machine stretches any delay): while the org
    // is being seeded, then once 5, 30, 80 and 150 operations of the load have begun.
    for (run, kill_after) in [None, Some(5), Some(30), Some(80), Some(150)]
        .into_iter()
        .enumerate()
    {
        let dir: PathBuf = base.join(format!("run{run}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sessions.redb");
        let (mut child, received, reader) = spawn_child("crash_child_helper", CHILD_DB, &path);
        let mut lines = Vec::new();
        let mut begun = 0;
        loop {
            // The timeout only keeps a hung child from hanging the test.
            let Ok(line) = received.recv_timeout(Duration::from_secs(120)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("run {run}: the child stopped or hung after {begun} operations");
            };
            begun += usize::from(line.starts_with("B "));
            // The child ends the harness's "test crash_child_helper ... " line once its
            // engine is open, just before seeding the org.
            let opened = line.starts_with("test crash_child_helper");
            lines.push(line);
            if kill_after.map_or(opened, |ops| begun >= ops) {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // What the child printed before it died counts too.
        lines.extend(received.iter());
        reader.join().unwrap();
        let outcome = parse(&lines);
        eprintln!("run {run}: killed after {} operations", outcome.ops);
        if lines.iter().any(|line| line == "READY") {
            check(&path, &outcome);
        } else {
            assert_eq!(kill_after, None, "the load began, so the child was READY");
            // Killed while creating or seeding: the file must still open (or not exist).
            if path.exists() {
                let clock = ManualClock::new(T0);
                open(&path, &clock).expect("a database killed while being created opens");
            }
        }
    }
    std::fs::remove_dir_all(&base).ok();
}

// ----- the write-behind bound ----------------------------------------------------------------
//
// docs/durability.md: after a crash every session's stored last activity is at least the one
// it had `I + F` before the crash (one flush interval plus one flush), and never later than
// the engine's. Stated without wall-clock time, which a loaded machine stretches at will: once
// a flusher pass has *started* after a validation returned, that validation is durable. A pass
// that completes after the validation may have walked the table before it, so the second pass
// completed after the validation is the first one certain to hold it. The child below counts
// the passes through a store wrapper and never flushes explicitly or shuts down cleanly: only
// the background flusher can have written what the reopened file holds.

const WRITE_BEHIND_DB: &str = "SESSIONWARD_WRITE_BEHIND_CHILD_DB";
/// Sessions the write-behind child logs in; the first one is never validated.
const WATCHED_SESSIONS: usize = 6;
/// Rounds after which the child stops on its own (the parent kills it long before).
const MAX_ROUNDS: u64 = 100;

/// A [`RedbStore`] that prints every activity flush it made durable and counts them.
///
/// The flusher is the only caller whose batches hold nothing but activity (the child never
/// calls `flush_activity` and never drops its engine), and its empty passes reach `commit`
/// too, so `passes` counts the flusher's passes exactly.
#[derive(Debug)]
struct Watched {
    store: RedbStore,
    passes: std::sync::Mutex<u64>,
    passed: std::sync::Condvar,
}

impl Watched {
    fn passes(&self) -> u64 {
        *self.passes.lock().unwrap()
    }

    /// Waits until `passes` flusher passes have completed. The deadline only keeps a broken
    /// flusher from hanging the test: it is not part of any assertion.
    fn wait_for(&self, passes: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut done = self.passes.lock().unwrap();
        while *done < passes {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = self.passed.wait_timeout(done, left).unwrap().0;
        }
        true
    }
}

impl SessionStore for Watched {
    fn load(&self, now: u64, retention: u32) -> Result<StoredState, Error> {
        self.store.load(now, retention)
    }

    fn commit(&self, changes: Vec<StoreChange>) -> Result<(), Error> {
        let written: Option<Vec<(u64, u32)>> = changes
            .iter()
            .map(|change| match change {
                StoreChange::Activity { handle, at } => Some((*handle, *at)),
                _ => None,
            })
            .collect();
        self.store.commit(changes)?;
        if let Some(written) = written {
            // Printed under the counter's lock, so pass numbers appear in order.
            let mut passes = self.passes.lock().unwrap();
            *passes += 1;
            let out = std::io::stdout();
            let mut out = out.lock();
            for (handle, at) in written {
                writeln!(out, "A {handle} {at}").unwrap();
            }
            writeln!(out, "P {passes}").unwrap();
            out.flush().unwrap();
            drop(out);
            drop(passes);
            self.passed.notify_all();
        }
        Ok(())
    }
}

/// Not a test: the child of `kill_nine_keeps_what_the_background_flusher_wrote`.
#[test]
fn write_behind_child_helper() {
    let Some(path) = std::env::var_os(WRITE_BEHIND_DB) else {
        return;
    };
    write_behind_child(Path::new(&path));
}

/// Prints (never a token): `L handle created` per login; per round `B round now handles..`
/// before validating those sessions, `V round handle now` once each validation returned,
/// `R round passes` with the flusher passes completed by then; the store prints `A handle at`
/// and `P pass` for every flusher pass.
fn write_behind_child(path: &Path) {
    let clock = ManualClock::new(T0);
    let store = Arc::new(Watched {
        store: RedbStore::open(path).expect("child opens the database"),
        passes: std::sync::Mutex::new(0),
        passed: std::sync::Condvar::new(),
    });
    let engine = Engine::builder()
        .store(Arc::clone(&store) as Arc<dyn SessionStore>)
        .settings(settings(120))
        .clock(Arc::new(clock.clone()))
        .activity_flush_interval(Duration::from_millis(100))
        .build()
        .expect("child builds its engine");
    let say = |line: String| {
        let out = std::io::stdout();
        let mut out = out.lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    // End the test harness's "test write_behind_child_helper ... " line.
    say(String::new());
    engine
        .add_profile(Profile::builder("staff").build().unwrap())
        .unwrap();
    engine.add_user("ada", "staff").unwrap();
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let sessions: Vec<(String, u64)> = (0..WATCHED_SESSIONS)
        .map(|_| {
            let request = LoginRequest::new("ada", ip).method(LoginMethod::Mfa);
            let issued = engine.login(&request).unwrap().issued().unwrap();
            let handle = issued.session.handle.as_u64();
            say(format!("L {handle} {}", issued.session.created));
            (issued.token.expose_secret().to_owned(), handle)
        })
        .collect();
    for round in 1..=MAX_ROUNDS {
        clock.advance(Duration::from_secs(10));
        let now = clock.now();
        // The first session is never validated: nothing may ever be written for it. The
        // others skip one round in three, so the clock runs ahead of their activity.
        let picked: Vec<&(String, u64)> = sessions
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 0 && (i as u64 + round) % 3 != 0)
            .map(|(_, session)| session)
            .collect();
        let handles: Vec<String> = picked.iter().map(|(_, h)| h.to_string()).collect();
        say(format!("B {round} {now} {}", handles.join(" ")));
        for (token, handle) in picked {
            engine.validate(token, ip, Requirement::Any).unwrap();
            say(format!("V {round} {handle} {now}"));
        }
        let passes = store.passes();
        say(format!("R {round} {passes}"));
        if !store.wait_for(passes + 2) {
            say("STUCK".into());
            return;
        }
    }
    say("DONE".into());
    // Leave without the engine's last flush: this child only ever ends like a crash.
    std::mem::forget(engine);
}

/// What the parent read from the write-behind child.
#[derive(Default)]
struct Flushes {
    /// Login time per handle.
    created: HashMap<u64, u64>,
    /// Latest time each handle may have been validated at (a round whose validations began).
    validated_by: HashMap<u64, u64>,
    /// Per round: its time and the handles whose validation returned.
    rounds: HashMap<u64, (u64, Vec<u64>)>,
    /// Per completed round: flusher passes completed when its validations had returned.
    passes_at_round: HashMap<u64, u64>,
    /// Per flusher pass (1-based, index 0 unused): the activity it made durable.
    passes: Vec<Vec<(u64, u64)>>,
}

impl Flushes {
    fn read(&mut self, line: &str, pending: &mut Vec<(u64, u64)>) {
        let words: Vec<&str> = line.split(' ').collect();
        let num = |at: usize| -> u64 { words[at].parse().unwrap() };
        match words[0] {
            "L" => {
                self.created.insert(num(1), num(2));
            }
            "B" => {
                for at in 3..words.len() {
                    self.validated_by.insert(num(at), num(2));
                }
                self.rounds.insert(num(1), (num(2), Vec::new()));
            }
            "V" => self.rounds.get_mut(&num(1)).unwrap().1.push(num(2)),
            "R" => {
                self.passes_at_round.insert(num(1), num(2));
            }
            "A" => pending.push((num(1), num(2))),
            "P" => {
                if self.passes.is_empty() {
                    self.passes.push(Vec::new());
                }
                assert_eq!(num(1), self.passes.len() as u64, "passes in order");
                self.passes.push(std::mem::take(pending));
            }
            _ => {}
        }
    }

    fn completed_passes(&self) -> u64 {
        self.passes.len().saturating_sub(1) as u64
    }

    /// Latest activity of `handle` written by passes `1..=last`.
    fn written(&self, handle: u64, last: u64) -> Option<u64> {
        self.passes
            .iter()
            .take(last as usize + 1)
            .flatten()
            .filter(|(h, _)| *h == handle)
            .map(|(_, at)| *at)
            .max()
    }
}

#[test]
fn kill_nine_keeps_what_the_background_flusher_wrote() {
    let base = std::env::temp_dir().join(format!("swd-write-behind-{}", std::process::id()));
    // Kill right after the first round is certainly flushed, and a few rounds later.
    for kill_after in [1_u64, 4] {
        let dir = base.join(format!("round{kill_after}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sessions.redb");
        let (mut child, received, reader) =
            spawn_child("write_behind_child_helper", WRITE_BEHIND_DB, &path);
        let mut seen = Flushes::default();
        let mut pending = Vec::new();
        let mut last = Vec::new();
        // Wait for the observable condition, not for a time: round `kill_after` validated,
        // then two more flusher passes durable. The timeout only keeps a hung child from
        // hanging the test.
        loop {
            let Ok(line) = received.recv_timeout(Duration::from_secs(120)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child stopped or hung before round {kill_after} was flushed: {last:?}");
            };
            if line == "STUCK" {
                let _ = child.wait();
                panic!("no flusher pass for 60 s: the background flusher is not running");
            }
            seen.read(&line, &mut pending);
            last.push(line);
            if last.len() > 8 {
                last.remove(0);
            }
            if seen
                .passes_at_round
                .get(&kill_after)
                .is_some_and(|&at| seen.completed_passes() >= at + 2)
            {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL: no last flush, no clean close
        child.wait().unwrap();
        // Whatever the child printed before it died counts too.
        for line in received.iter() {
            seen.read(&line, &mut pending);
        }
        reader.join().unwrap();
        check_write_behind(&path, &seen, kill_after);
    }
    std::fs::remove_dir_all(&base).ok();
}

fn check_write_behind(path: &Path, seen: &Flushes, kill_after: u64) {
    assert_eq!(seen.created.len(), WATCHED_SESSIONS);
    let completed = seen.completed_passes();
    // In the child: the first pass that started after a validation returned wrote it.
    for (round, &(at, ref handles)) in &seen.rounds {
        let Some(&before) = seen.passes_at_round.get(round) else {
            continue;
        };
        if before + 2 > completed {
            continue;
        }
        for &handle in handles {
            let written = seen.written(handle, before + 2);
            assert!(
                written >= Some(at),
                "round {round}: session {handle} validated at {at}, but the second flusher \
                 pass after that wrote {written:?}"
            );
        }
    }
    // The flusher only ever wrote values the engine had.
    for &(handle, at) in seen.passes.iter().flatten() {
        let created = seen.created[&handle];
        let latest = seen.validated_by.get(&handle).copied().unwrap_or(created);
        assert!(
            created < at && at <= latest,
            "session {handle}: flushed {at}, logged in at {created}, validated by {latest}"
        );
    }

    let now = seen.rounds.values().map(|&(at, _)| at).max().unwrap_or(T0);
    let clock = ManualClock::new(now);
    let engine = open(path, &clock).unwrap_or_else(|err| panic!("reopen after kill -9: {err}"));
    let stored: HashMap<u64, u64> = engine
        .sessions(&SessionFilter::default(), None, MAX_PAGE_SIZE)
        .unwrap()
        .rows
        .iter()
        .map(|row| (row.info.handle.as_u64(), row.info.last_activity))
        .collect();
    assert_eq!(stored.len(), WATCHED_SESSIONS, "every session survived");
    let flushed_round = seen.rounds[&kill_after].0;
    for (&handle, &created) in &seen.created {
        let last = stored[&handle];
        // Never later than memory: at most the latest validation that may have happened.
        let latest = seen.validated_by.get(&handle).copied().unwrap_or(created);
        assert!(
            last <= latest,
            "session {handle}: stored activity {last} is later than its last validation {latest}"
        );
        // At least what a completed pass made durable (the child printed it after commit).
        let written = seen.written(handle, completed).unwrap_or(created);
        assert!(
            last >= written,
            "session {handle}: stored activity {last}, but a flusher pass had written {written}"
        );
        // The bound itself: validations of round `kill_after` had two passes after them.
        if seen.rounds[&kill_after].1.contains(&handle) {
            assert!(
                last >= flushed_round,
                "session {handle}: stored activity {last}, validated at {flushed_round} and \
                 followed by two flusher passes before the kill"
            );
        }
    }
    let never_validated = seen
        .created
        .keys()
        .find(|handle| !seen.validated_by.contains_key(handle))
        .expect("one session is never validated");
    assert_eq!(
        stored[never_validated], seen.created[never_validated],
        "nothing is written for a session never validated"
    );
    eprintln!(
        "  killed after round {kill_after}: {completed} flusher passes, {} rounds begun",
        seen.rounds.len()
    );
}
