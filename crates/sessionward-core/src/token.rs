//! Bearer tokens, their digests and the public session handle.
//!
//! A token is `swd_` + 43 base62 characters (256 random bits from ChaCha20 seeded by the OS) + 6
//! base62 characters of the CRC32 of everything before them: 53 ASCII characters. The fixed shape
//! lets [`validate`](crate::Engine::validate) refuse malformed input before touching the table, and
//! lets secret scanners and [`redact_tokens`] find leaked tokens in logs.
//!
//! The engine never stores a token: the table is keyed by its SHA-256 digest, so a copy of memory
//! or of a database file yields nothing that validates. The [`Handle`] shown to admins is the first
//! 64 bits of that digest; finding a token for a handle means inverting SHA-256.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Prefix of every sessionward token.
pub const TOKEN_PREFIX: &str = "swd_";
/// Length in bytes (= characters, all ASCII) of every sessionward token.
pub const TOKEN_LEN: usize = 53;
const BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const CHECKED_LEN: usize = TOKEN_PREFIX.len() + BODY_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Value of each ASCII byte as a base62 digit, or `0xFF`.
const BASE62_VALUE: [u8; 256] = {
    let mut table = [0xFF_u8; 256];
    let mut digit = 0;
    while digit < 62 {
        table[BASE62[digit] as usize] = digit as u8;
        digit += 1;
    }
    table
};

/// A session token: the bearer credential handed to the client exactly once, at login.
///
/// Its `Debug` and `Display` are redacted; the only way to the characters is
/// [`Token::expose_secret`], so that every place a token leaves the engine is easy to audit.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token's characters, to set a cookie or an `Authorization` header. Never log them.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Generates a fresh token from this thread's ChaCha20 stream.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut random = [0_u8; 32];
        fill_random(&mut random)?;
        Ok(Self(encode(&random)))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(swd_[REDACTED])")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("swd_[REDACTED]")
    }
}

/// SHA-256 of a token: what the table stores in place of the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenDigest(pub(crate) [u8; 32]);

impl TokenDigest {
    /// Digest of a token the caller already checked with [`is_well_formed`].
    pub(crate) fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The 64 bits that pick the shard and the slot, and that form the public handle.
    pub(crate) fn handle(&self) -> Handle {
        let mut first = [0_u8; 8];
        first.copy_from_slice(&self.0[..8]);
        Handle(u64::from_le_bytes(first))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not a credential, but there is no reason to print it either.
        write!(f, "TokenDigest({})", self.handle())
    }
}

/// Public identifier of a session, shown to admins and in events: `swh_` + 16 hex digits.
///
/// It is derived from the token digest and cannot be used to authenticate.
///
/// # Examples
///
/// ```
/// use sessionward_core::Handle;
///
/// let handle: Handle = "swh_00000000000000ff".parse().unwrap();
/// assert_eq!(handle.to_string(), "swh_00000000000000ff");
/// assert!("swh_xyz".parse::<Handle>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Handle(pub(crate) u64);

impl Handle {
    /// The handle as a number (for compact storage or sorting).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The handle with this number.
    pub fn from_u64(value: u64) -> Self {
        Self(value)
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "swh_{:016x}", self.0)
    }
}

impl FromStr for Handle {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidHandle {
            value: crate::error::shorten(text),
        };
        let hex = text.strip_prefix("swh_").ok_or_else(invalid)?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        u64::from_str_radix(hex, 16)
            .map(Self)
            .map_err(|_| invalid())
    }
}

/// Whether `text` has the exact shape of a sessionward token, checksum included.
///
/// This is cheap (no hashing beyond CRC32) and is what makes malformed tokens fail before any
/// table lookup.
///
/// # Examples
///
/// ```
/// assert!(!sessionward_core::is_well_formed("swd_not-a-token"));
/// ```
pub fn is_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != TOKEN_LEN || !bytes.starts_with(TOKEN_PREFIX.as_bytes()) {
        return false;
    }
    if !bytes[TOKEN_PREFIX.len()..]
        .iter()
        .all(|&b| BASE62_VALUE[b as usize] != 0xFF)
    {
        return false;
    }
    let mut stated: u64 = 0;
    for &b in &bytes[CHECKED_LEN..] {
        stated = stated * 62 + u64::from(BASE62_VALUE[b as usize]);
    }
    stated == u64::from(crc32fast::hash(&bytes[..CHECKED_LEN]))
}

/// Replaces every well-formed token in `text` with `swd_[REDACTED]`.
///
/// For log pipelines that may see request headers by mistake.
///
/// # Examples
///
/// ```
/// assert_eq!(sessionward_core::redact_tokens("nothing here"), "nothing here");
/// ```
pub fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        let candidate = rest.get(at..at + TOKEN_LEN);
        let boundary_after = rest
            .as_bytes()
            .get(at + TOKEN_LEN)
            .is_none_or(|&b| BASE62_VALUE[b as usize] == 0xFF);
        match candidate {
            Some(token) if boundary_after && is_well_formed(token) => {
                out.push_str(&rest[..at]);
                out.push_str("swd_[REDACTED]");
                rest = &rest[at + TOKEN_LEN..];
            }
            _ => {
                out.push_str(&rest[..at + TOKEN_PREFIX.len()]);
                rest = &rest[at + TOKEN_PREFIX.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Formats 32 random bytes as a token.
fn encode(random: &[u8; 32]) -> String {
    // Big-endian base-62 of the 256-bit number, fixed width: 62^43 > 2^256.
    let mut limbs = [0_u32; 8];
    for (limb, chunk) in limbs.iter_mut().zip(random.chunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let mut body = [0_u8; BODY_LEN];
    for slot in body.iter_mut().rev() {
        let mut remainder: u64 = 0;
        for limb in &mut limbs {
            let value = (remainder << 32) | u64::from(*limb);
            *limb = (value / 62) as u32;
            remainder = value % 62;
        }
        *slot = BASE62[remainder as usize];
    }
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(TOKEN_PREFIX);
    token.extend(body.iter().map(|&b| char::from(b)));
    let mut checksum = u64::from(crc32fast::hash(token.as_bytes()));
    let mut digits = [0_u8; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(checksum % 62) as usize];
        checksum /= 62;
    }
    token.extend(digits.iter().map(|&b| char::from(b)));
    token
}

thread_local! {
    /// This thread's ChaCha20 stream and the process it was seeded in.
    static RNG: RefCell<Option<(u32, ChaCha20Rng)>> = const { RefCell::new(None) };
}

/// Fills `out` from this thread's ChaCha20 stream, reseeding from the OS on first use and
/// whenever the process id changed: a child forked after the parent issued tokens (gunicorn's
/// preload) must never replay the parent's stream.
fn fill_random(out: &mut [u8; 32]) -> Result<(), Error> {
    let pid = std::process::id();
    RNG.with(|cell| {
        let mut state = cell.borrow_mut();
        match state.as_mut() {
            Some((seeded_in, rng)) if *seeded_in == pid => rng.fill_bytes(out),
            _ => {
                let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|_| Error::Entropy)?;
                rng.fill_bytes(out);
                *state = Some((pid, rng));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let first = Token::generate().unwrap();
        let second = Token::generate().unwrap();
        assert_eq!(first.expose_secret().len(), TOKEN_LEN);
        assert!(is_well_formed(first.expose_secret()));
        assert_ne!(first, second);
    }

    #[test]
    fn any_single_character_change_breaks_the_checksum_or_shape() {
        let token = Token::generate().unwrap();
        let text = token.expose_secret();
        for at in 0..TOKEN_LEN {
            let mut bytes = text.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(!is_well_formed(&changed), "change at {at} accepted");
        }
        assert!(!is_well_formed(&text[..TOKEN_LEN - 1]));
        assert!(!is_well_formed(&format!("{text}0")));
    }

    #[test]
    fn encoding_is_big_endian_base62() {
        let mut one = [0_u8; 32];
        one[31] = 1;
        let token = encode(&one);
        assert_eq!(&token[4..47], &format!("{}1", "0".repeat(42)));
        let max = encode(&[0xFF; 32]);
        assert!(is_well_formed(&max));
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let token = Token::generate().unwrap();
        let secret = token.expose_secret().to_owned();
        assert!(!format!("{token:?}").contains(&secret[4..]));
        assert!(!format!("{token}").contains(&secret[4..]));
    }

    #[test]
    fn redaction_finds_embedded_tokens_only_when_valid() {
        let token = Token::generate().unwrap();
        let secret = token.expose_secret();
        let line = format!("cookie={secret}; other=swd_short");
        let redacted = redact_tokens(&line);
        assert_eq!(redacted, "cookie=swd_[REDACTED]; other=swd_short");
        let glued = format!("{secret}x");
        assert_eq!(
            redact_tokens(&glued),
            glued,
            "not a token when glued to more base62"
        );
    }

    #[test]
    fn forked_child_reseeds() {
        // Simulate a fork: the thread-local state claims another pid, as a child would see.
        let mut parent_stream = [0_u8; 32];
        fill_random(&mut parent_stream).unwrap();
        RNG.with(|cell| {
            let mut state = cell.borrow_mut();
            let (pid, rng) = state.as_mut().unwrap();
            *pid = pid.wrapping_add(1);
            let mut clone = rng.clone();
            let mut replay = [0_u8; 32];
            clone.fill_bytes(&mut replay);
            drop(state);
            let mut after = [0_u8; 32];
            fill_random(&mut after).unwrap();
            assert_ne!(after, replay, "a child must not replay the parent's stream");
        });
    }
}
