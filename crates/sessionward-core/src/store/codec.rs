//! The compact binary encoding of format version 2: sessions, settings, profiles, users, OAuth
//! clients and grants, remembered devices.
//!
//! Hand-rolled rather than serde: the values are few and fixed, the public settings types keep
//! their fields private (they are rebuilt through their validating builders, so a stored value
//! that no longer passes validation is refused instead of loaded), and the core crate needs no
//! derive dependency. Every value ends with a CRC32 of what precedes it, so a flipped byte in a
//! row is caught on load even where redb would not look (it checks its own page checksums only
//! when repairing).
//!
//! All integers are little endian. Layouts (before the trailing 4-byte CRC32):
//!
//! - session (64 bytes): key 28 (selector 8, SHA-256 prefix 20), origin 16 (IPv4 as IPv4-mapped IPv6), created u32,
//!   absolute deadline u32, idle seconds u32, user u32, profile u16, level u8, packed u8
//!   (bits 0-1 session type, 2-4 login method, 5 IP-locked, 6 browser-bound);
//! - settings: inactivity u32, max length u32, flags u8 (bit 0 re-login on browser close, 1 IP
//!   lock, 2 login ranges on every request), 6 method levels u8, trusted ranges, operations;
//! - profile: name, timeout u32 (0 = org's), max length u32 (0 = org's), login ranges, required
//!   level u8, cap kind u8 (0 none, 1 end oldest, 2 refuse new), cap u32;
//! - user: profile u16, id;
//! - OAuth client (keyed by its id): run-as user, secret SHA-256 (32 bytes), scopes (a list of
//!   strings);
//! - OAuth grant (keyed by handle): client id, scopes;
//! - remembered devices (keyed by user): SHA-256 digests of device ids, 32 bytes each, oldest
//!   first;
//! - a range: family u8 (4 or 6), address 4 or 16, prefix u8; a list: count u16 + items; a
//!   string: length u16 + UTF-8.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;

use super::{StoredClient, StoredGrant, StoredSession};
use crate::{CapAction, EndReason, LoginMethod, OrgSettings, Profile, SecurityLevel, SessionType};

/// Length of an encoded session, CRC included.
pub(crate) const SESSION_LEN: usize = 68;

const IP_LOCKED: u8 = 0b0010_0000;
const BROWSER_BOUND: u8 = 0b0100_0000;

/// Why a stored value could not be decoded (becomes [`Error::StoreCorrupt`](crate::Error)).
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) &'static str);

fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn unseal<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], Malformed> {
    if bytes.len() < 4 {
        return Err(Malformed(what));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(Malformed(what));
    }
    Ok(body)
}

/// Encodes a session row (without its end, activity: those live in their own tables).
pub(crate) fn encode_session(session: &StoredSession) -> Vec<u8> {
    let mut out = Vec::with_capacity(SESSION_LEN);
    out.extend_from_slice(&session.digest);
    let origin = match session.origin {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    out.extend_from_slice(&origin);
    for value in [
        session.created,
        session.absolute_deadline,
        session.idle_secs,
        session.user,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&session.profile.to_le_bytes());
    out.push(session.level as u8);
    let mut packed = (session.session_type as u8 & 0b11) | ((session.method as u8 & 0b111) << 2);
    if session.ip_locked {
        packed |= IP_LOCKED;
    }
    if session.browser_bound {
        packed |= BROWSER_BOUND;
    }
    out.push(packed);
    seal(out)
}

/// Decodes a session row; `last_activity` is set to `created` and `ended` to `None`.
pub(crate) fn decode_session(bytes: &[u8]) -> Result<StoredSession, Malformed> {
    if bytes.len() != SESSION_LEN {
        return Err(Malformed("session row has the wrong length"));
    }
    let body = unseal(bytes, "session row checksum mismatch")?;
    let mut digest = [0_u8; 28];
    digest.copy_from_slice(&body[..28]);
    let mut origin = [0_u8; 16];
    origin.copy_from_slice(&body[28..44]);
    let word = |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    let created = word(44);
    let level = body[62];
    let packed = body[63];
    if level > 2 || packed & 0b11 > 2 || (packed >> 2) & 0b111 > 5 || packed & 0x80 != 0 {
        return Err(Malformed("session row holds an unknown level or flag"));
    }
    Ok(StoredSession {
        digest,
        origin: Ipv6Addr::from(origin).to_canonical(),
        created,
        last_activity: created,
        absolute_deadline: word(48),
        idle_secs: word(52),
        user: word(56),
        profile: u16::from_le_bytes([body[60], body[61]]),
        level: SecurityLevel::from_u8(level),
        session_type: SessionType::from_u8(packed & 0b11),
        method: LoginMethod::from_u8((packed >> 2) & 0b111),
        ip_locked: packed & IP_LOCKED != 0,
        browser_bound: packed & BROWSER_BOUND != 0,
        ended: None,
    })
}

/// An end as stored: reason in the high 32 bits, time in the low ones.
pub(crate) fn encode_end(reason: EndReason, at: u32) -> u64 {
    (u64::from(reason as u8) << 32) | u64::from(at)
}

pub(crate) fn decode_end(value: u64) -> Result<(EndReason, u32), Malformed> {
    let reason = u8::try_from(value >> 32)
        .ok()
        .and_then(EndReason::from_u8)
        .ok_or(Malformed("end row holds an unknown reason"))?;
    Ok((reason, value as u32))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn secs(&mut self, value: Option<Duration>) {
        self.u32(value.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)));
    }
    fn str(&mut self, value: &str) {
        // Names are at most 256 bytes (checked by the builders).
        self.u16(u16::try_from(value.len()).unwrap_or(u16::MAX));
        self.0.extend_from_slice(value.as_bytes());
    }
    fn ranges(&mut self, ranges: &[IpNet]) {
        self.u16(u16::try_from(ranges.len()).unwrap_or(u16::MAX));
        for net in ranges {
            match net.addr() {
                IpAddr::V4(v4) => {
                    self.u8(4);
                    self.0.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    self.u8(6);
                    self.0.extend_from_slice(&v6.octets());
                }
            }
            self.u8(net.prefix_len());
        }
    }
}

struct Reader<'a>(&'a [u8]);

const SHORT: Malformed = Malformed("directory value is truncated");

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], Malformed> {
        if self.0.len() < len {
            return Err(SHORT);
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn secs(&mut self) -> Result<Option<Duration>, Malformed> {
        Ok(match self.u32()? {
            0 => None,
            secs => Some(Duration::from_secs(u64::from(secs))),
        })
    }
    fn string(&mut self) -> Result<String, Malformed> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| Malformed("name is not UTF-8"))
    }
    fn ranges(&mut self) -> Result<Vec<IpNet>, Malformed> {
        let count = usize::from(self.u16()?);
        let mut ranges = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let addr = match self.u8()? {
                4 => {
                    let b = self.take(4)?;
                    IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                6 => {
                    let mut octets = [0_u8; 16];
                    octets.copy_from_slice(self.take(16)?);
                    IpAddr::V6(Ipv6Addr::from(octets))
                }
                _ => return Err(Malformed("range has an unknown address family")),
            };
            let net = IpNet::new(addr, self.u8()?).map_err(|_| Malformed("range prefix"))?;
            ranges.push(net);
        }
        Ok(ranges)
    }
    fn level(&mut self) -> Result<SecurityLevel, Malformed> {
        match self.u8()? {
            level @ 0..=2 => Ok(SecurityLevel::from_u8(level)),
            _ => Err(Malformed("unknown security level")),
        }
    }
    fn finish(&self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed("directory value has trailing bytes"))
        }
    }
}

pub(crate) fn encode_settings(settings: &OrgSettings) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.secs(Some(settings.inactivity_timeout()));
    w.secs(Some(settings.max_session_length()));
    w.u8(u8::from(settings.force_relogin_on_browser_close())
        | u8::from(settings.lock_sessions_to_ip()) << 1
        | u8::from(settings.enforce_login_ranges_every_request()) << 2);
    for method in LoginMethod::ALL {
        w.u8(settings.level_for(method) as u8);
    }
    w.ranges(settings.trusted_ranges());
    let operations = settings.high_assurance_operations();
    w.u16(u16::try_from(operations.len()).unwrap_or(u16::MAX));
    for operation in operations {
        w.str(operation);
    }
    seal(w.0)
}

pub(crate) fn decode_settings(bytes: &[u8]) -> Result<OrgSettings, Malformed> {
    let mut r = Reader(unseal(bytes, "settings checksum mismatch")?);
    let inactivity = r
        .secs()?
        .ok_or(Malformed("settings: zero inactivity timeout"))?;
    let max_length = r
        .secs()?
        .ok_or(Malformed("settings: zero maximum length"))?;
    let flags = r.u8()?;
    let mut builder = OrgSettings::builder()
        .inactivity_timeout(inactivity)
        .max_session_length(max_length)
        .force_relogin_on_browser_close(flags & 1 != 0)
        .lock_sessions_to_ip(flags & 2 != 0)
        .enforce_login_ranges_every_request(flags & 4 != 0);
    for method in LoginMethod::ALL {
        builder = builder.method_level(method, r.level()?);
    }
    builder = builder.trusted_ranges(r.ranges()?);
    let operations = r.u16()?;
    for _ in 0..operations {
        builder = builder.high_assurance_operation(r.string()?);
    }
    r.finish()?;
    builder
        .build()
        .map_err(|_| Malformed("stored settings no longer validate"))
}

pub(crate) fn encode_profile(profile: &Profile) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.str(profile.name());
    w.secs(profile.session_timeout());
    w.secs(profile.max_session_length());
    w.ranges(profile.login_ranges());
    w.u8(profile.required_level() as u8);
    match profile.session_cap() {
        None => {
            w.u8(0);
            w.u32(0);
        }
        Some(cap) => {
            w.u8(match cap.action {
                CapAction::EndOldest => 1,
                CapAction::RefuseNew => 2,
            });
            w.u32(cap.max_sessions);
        }
    }
    seal(w.0)
}

pub(crate) fn decode_profile(bytes: &[u8]) -> Result<Profile, Malformed> {
    let mut r = Reader(unseal(bytes, "profile checksum mismatch")?);
    let mut builder = Profile::builder(r.string()?);
    if let Some(timeout) = r.secs()? {
        builder = builder.session_timeout(timeout);
    }
    if let Some(length) = r.secs()? {
        builder = builder.max_session_length(length);
    }
    builder = builder.login_ranges(r.ranges()?).required_level(r.level()?);
    let (kind, cap) = (r.u8()?, r.u32()?);
    builder = match kind {
        0 => builder,
        1 => builder.session_cap(cap, CapAction::EndOldest),
        2 => builder.session_cap(cap, CapAction::RefuseNew),
        _ => return Err(Malformed("profile: unknown cap action")),
    };
    r.finish()?;
    builder
        .build()
        .map_err(|_| Malformed("stored profile no longer validates"))
}

pub(crate) fn encode_user(id: &str, profile: u16) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(8 + id.len()));
    w.u16(profile);
    w.str(id);
    seal(w.0)
}

pub(crate) fn decode_user(bytes: &[u8]) -> Result<(String, u16), Malformed> {
    let mut r = Reader(unseal(bytes, "user checksum mismatch")?);
    let profile = r.u16()?;
    let id = r.string()?;
    r.finish()?;
    crate::settings::check_name("user", &id).map_err(|_| Malformed("stored user id invalid"))?;
    Ok((id, profile))
}

/// Most scopes a stored client or grant may carry (the registry's own limit).
const MAX_STORED_SCOPES: usize = 64;

fn write_scopes(w: &mut Writer, scopes: &[String]) {
    w.u16(u16::try_from(scopes.len()).unwrap_or(u16::MAX));
    for scope in scopes {
        w.str(scope);
    }
}

fn read_scopes(r: &mut Reader<'_>) -> Result<Vec<String>, Malformed> {
    let count = usize::from(r.u16()?);
    if count > MAX_STORED_SCOPES {
        return Err(Malformed("too many stored scopes"));
    }
    (0..count).map(|_| r.string()).collect()
}

pub(crate) fn encode_client(client: &StoredClient) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 + client.run_as.len()));
    w.str(&client.run_as);
    w.0.extend_from_slice(&client.secret_digest);
    write_scopes(&mut w, &client.scopes);
    seal(w.0)
}

pub(crate) fn decode_client(client_id: &str, bytes: &[u8]) -> Result<StoredClient, Malformed> {
    let mut r = Reader(unseal(bytes, "OAuth client checksum mismatch")?);
    let run_as = r.string()?;
    let mut secret_digest = [0_u8; 32];
    secret_digest.copy_from_slice(r.take(32)?);
    let scopes = read_scopes(&mut r)?;
    r.finish()?;
    Ok(StoredClient {
        client_id: client_id.to_owned(),
        run_as,
        scopes,
        secret_digest,
    })
}

pub(crate) fn encode_grant(grant: &StoredGrant) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(32 + grant.client_id.len()));
    w.str(&grant.client_id);
    write_scopes(&mut w, &grant.scopes);
    seal(w.0)
}

pub(crate) fn decode_grant(handle: u64, bytes: &[u8]) -> Result<StoredGrant, Malformed> {
    let mut r = Reader(unseal(bytes, "OAuth grant checksum mismatch")?);
    let client_id = r.string()?;
    let scopes = read_scopes(&mut r)?;
    r.finish()?;
    Ok(StoredGrant {
        handle,
        client_id,
        scopes,
    })
}

/// Encodes a user's remembered devices (SHA-256 of each device id, oldest first).
pub(crate) fn encode_devices(devices: &[[u8; 32]]) -> Vec<u8> {
    seal(devices.concat())
}

/// Decodes a user's remembered devices: whole 32-byte digests, at most
/// [`MAX_REMEMBERED_DEVICES`](crate::MAX_REMEMBERED_DEVICES).
pub(crate) fn decode_devices(bytes: &[u8]) -> Result<Vec<[u8; 32]>, Malformed> {
    let body = unseal(bytes, "remembered devices checksum mismatch")?;
    if body.len() % 32 != 0 || body.len() / 32 > crate::MAX_REMEMBERED_DEVICES {
        return Err(Malformed("remembered devices have the wrong length"));
    }
    Ok(body
        .chunks_exact(32)
        .map(|digest| <[u8; 32]>::try_from(digest).unwrap_or_default())
        .collect())
}

/// The decoders for the `store_rows` fuzz target (built by `cargo fuzz`, which sets
/// `--cfg fuzzing`): what a damaged or crafted database file can hand them.
#[cfg(fuzzing)]
pub mod fuzzing {
    use super::*;

    /// Decodes `body` as the row kind `kind` picks (sealed first, so that the bytes reach the
    /// parser rather than stop at the checksum) and, if it decodes, checks that encoding the
    /// value again decodes to the same value. Panics only if that check fails.
    pub fn decode_row(kind: u8, key: u64, body: &[u8]) {
        let sealed = seal(body.to_vec());
        match kind % 8 {
            0 => {
                // A session row is 64 bytes before its checksum: pad or cut to that length
                // so that most inputs reach the field checks.
                let mut row = body.to_vec();
                row.resize(SESSION_LEN - 4, 0);
                round_trips(decode_session(&seal(row)), |session| {
                    decode_session(&encode_session(session))
                });
            }
            1 => round_trips(decode_end(key), |&(reason, at)| {
                decode_end(encode_end(reason, at))
            }),
            2 => round_trips(decode_settings(&sealed), |settings| {
                decode_settings(&encode_settings(settings))
            }),
            3 => round_trips(decode_profile(&sealed), |profile| {
                decode_profile(&encode_profile(profile))
            }),
            4 => round_trips(decode_user(&sealed), |(id, profile)| {
                decode_user(&encode_user(id, *profile))
            }),
            5 => round_trips(decode_client("client", &sealed), |client| {
                decode_client("client", &encode_client(client))
            }),
            6 => round_trips(decode_grant(key, &sealed), |grant| {
                decode_grant(key, &encode_grant(grant))
            }),
            _ => round_trips(decode_devices(&sealed), |devices| {
                decode_devices(&encode_devices(devices))
            }),
        }
    }

    /// If `decoded` is a value, encoding it and decoding again (`again`) gives it back.
    fn round_trips<T: PartialEq + std::fmt::Debug>(
        decoded: Result<T, Malformed>,
        again: impl FnOnce(&T) -> Result<T, Malformed>,
    ) {
        if let Ok(value) = decoded {
            assert_eq!(again(&value).ok(), Some(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_profiles_round_trip() {
        let settings = OrgSettings::builder()
            .inactivity_timeout(Duration::from_secs(1800))
            .lock_sessions_to_ip(true)
            .enforce_login_ranges_every_request(true)
            .trusted_range("10.0.0.0/8")
            .trusted_range("2001:db8::/32")
            .high_assurance_operation("setup")
            .method_level(LoginMethod::Sso, SecurityLevel::HighAssurance)
            .build()
            .unwrap();
        assert_eq!(
            decode_settings(&encode_settings(&settings)).unwrap(),
            settings
        );
        let profile = Profile::builder("admins")
            .session_timeout(Duration::from_secs(900))
            .login_range("203.0.113.0/24")
            .required_level(SecurityLevel::HighAssurance)
            .session_cap(3, CapAction::RefuseNew)
            .build()
            .unwrap();
        assert_eq!(decode_profile(&encode_profile(&profile)).unwrap(), profile);
        let plain = Profile::builder("staff").build().unwrap();
        assert_eq!(decode_profile(&encode_profile(&plain)).unwrap(), plain);
        assert_eq!(
            decode_user(&encode_user("ada", 7)).unwrap(),
            ("ada".into(), 7)
        );
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let session = StoredSession {
            digest: [7; 28],
            origin: "10.1.2.3".parse().unwrap(),
            created: 100,
            last_activity: 100,
            absolute_deadline: 200,
            idle_secs: 50,
            user: 3,
            profile: 2,
            level: SecurityLevel::HighAssurance,
            session_type: SessionType::Api,
            method: LoginMethod::Passkey,
            ip_locked: true,
            browser_bound: false,
            ended: None,
        };
        let bytes = encode_session(&session);
        assert_eq!(bytes.len(), SESSION_LEN);
        assert_eq!(decode_session(&bytes).unwrap(), session);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_session(&flipped).is_err(), "bit {bit}");
        }
        let profile = encode_profile(&Profile::builder("p").build().unwrap());
        assert!(decode_profile(&profile[..profile.len() - 1]).is_err());
        assert_eq!(
            decode_end(encode_end(EndReason::SourceRange, 77)).unwrap(),
            (EndReason::SourceRange, 77)
        );
        assert!(decode_end(99 << 32).is_err());
    }

    #[test]
    fn oauth_clients_and_grants_round_trip_and_catch_flipped_bits() {
        let client = StoredClient {
            client_id: "erp".into(),
            run_as: "erp-bot".into(),
            scopes: vec!["orders.read".into(), "orders.write".into()],
            secret_digest: [9; 32],
        };
        let grant = StoredGrant {
            handle: 42,
            client_id: "erp".into(),
            scopes: vec!["orders.read".into()],
        };
        let (client_bytes, grant_bytes) = (encode_client(&client), encode_grant(&grant));
        assert_eq!(decode_client("erp", &client_bytes).unwrap(), client);
        assert_eq!(decode_grant(42, &grant_bytes).unwrap(), grant);
        for bytes in [&client_bytes, &grant_bytes] {
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let caught = if std::ptr::eq(bytes, &client_bytes) {
                    decode_client("erp", &flipped).is_err()
                } else {
                    decode_grant(42, &flipped).is_err()
                };
                assert!(caught, "bit {bit}");
            }
        }
        assert!(decode_grant(42, &grant_bytes[..grant_bytes.len() - 1]).is_err());
    }

    #[test]
    fn remembered_devices_round_trip_and_catch_flipped_bits_and_bad_lengths() {
        let devices: Vec<[u8; 32]> = (0..3_u8).map(|n| [n; 32]).collect();
        let bytes = encode_devices(&devices);
        assert_eq!(decode_devices(&bytes).unwrap(), devices);
        assert_eq!(
            decode_devices(&encode_devices(&[])).unwrap(),
            Vec::<[u8; 32]>::new()
        );
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_devices(&flipped).is_err(), "bit {bit}");
        }
        // Sealed, but not whole digests, or more than a user may remember.
        assert!(decode_devices(&seal(vec![1; 33])).is_err());
        let too_many = vec![[7; 32]; crate::MAX_REMEMBERED_DEVICES + 1];
        assert!(decode_devices(&encode_devices(&too_many)).is_err());
    }
}
