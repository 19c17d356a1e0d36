//! Bearer tokens, their digests and the public session handle.
//!
//! A token is `swd_` + 11 base62 characters of a 64-bit random **selector** + 43 random base62
//! characters of **secret** (62^43 > 2^256; both from ChaCha20 seeded by the OS) + 6 base62
//! characters of the CRC32 of everything before them: 64 ASCII characters. The fixed shape lets
//! [`validate`](crate::Engine::validate) refuse malformed input before it hashes anything, and
//! lets secret scanners and [`redact_tokens`] find leaked tokens in logs.
//!
//! # Split token: why a selector
//!
//! The engine never stores a token. A session's record is keyed by the selector (which picks
//! its shard and slot) and holds the first 128 bits of the SHA-256 of the token's 54 random
//! characters. The selector is public: it *is* the [`Handle`] shown to admins and in events,
//! and knowing it gains nothing, because validating still needs the 256-bit secret, and the
//! stored digest prefix only yields one by inverting SHA-256 (2^128 work per session in
//! memory, where 128 bits rather than all 256 keep a record to one 64-byte cache line; 2^160
//! against the durable store's key, [`KEY_LEN`] bytes). So a copy of memory
//! or of a database file yields nothing that validates.
//!
//! What the selector buys is speed: a validation knows which slot to read *before* it hashes,
//! so the slot's cache miss (the dominant cost on a large table) overlaps with the SHA-256
//! instead of following it. This is the selector/verifier construction of split tokens.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use sha2::{Digest as _, Sha256};

use crate::raw::sha256;
use crate::Error;

/// Prefix of every sessionward token.
pub const TOKEN_PREFIX: &str = "swd_";
/// Length in bytes (= characters, all ASCII) of every sessionward token.
pub const TOKEN_LEN: usize = 64;
/// Characters of the selector: 62^11 > 2^64.
const SELECTOR_LEN: usize = 11;
/// Characters of the secret: 62^43 > 2^256 possible secrets.
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const SELECTOR_AT: usize = TOKEN_PREFIX.len();
const SECRET_AT: usize = SELECTOR_AT + SELECTOR_LEN;
const CHECKED_LEN: usize = SECRET_AT + SECRET_LEN;
const _: () = assert!(CHECKED_LEN + CHECKSUM_LEN == TOKEN_LEN);
const _: () = assert!(CHECKED_LEN == crate::raw::crc::CHECKED && TOKEN_LEN == 64);
/// 62^6: the selector is decoded as 5 high digits times this plus 6 low digits.
const BASE62_POW6: u64 = 62 * 62 * 62 * 62 * 62 * 62;
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
    ///
    /// The secret is drawn as 43 independent, uniform base62 digits (62^43 > 2^256 equally
    /// likely secrets) straight from random bytes: a byte below 248 (4 × 62) gives the digit
    /// `byte % 62`, and the 3 % of bytes above are skipped. Converting a 256-bit number to
    /// base62 instead took 72 long divisions, a sixth of a login. See [`SecretDigits`] for
    /// how the digits are made.
    pub(crate) fn generate() -> Result<Self, Error> {
        Self::generate_with(random_u64()?, |drawn| drawn).map(|(token, _)| token)
    }

    /// [`generate`](Self::generate), with the selector chosen by `choose` from `drawn` (a
    /// [`random_u64`] draw), before the secret and checksum are made; also returns the
    /// selector.
    ///
    /// A login draws early (so that the table lines of the selectors it will weigh load while
    /// it looks the user up), then chooses among selectors derived from the draw the one whose
    /// table slot is free (see `Engine::choose_selector`). The selector is public (it is the
    /// session's handle), so choosing it costs no secrecy: the token's strength is its 256-bit
    /// secret, drawn here independently of the choice.
    pub(crate) fn generate_with(
        drawn: u64,
        choose: impl FnOnce(u64) -> u64,
    ) -> Result<(Self, u64), Error> {
        let mut random = [0_u8; RANDOM_BATCH];
        fill_random(&mut random)?;
        let mut text = [0_u8; TOKEN_LEN];
        text[..SELECTOR_AT].copy_from_slice(TOKEN_PREFIX.as_bytes());
        // A zero selector marks an empty slot; the engine draws again on any taken selector,
        // and this keeps the (2^-64) zero case out of the table's way entirely.
        let selector = choose(drawn).max(1);
        encode_selector(selector, &mut text);
        let mut secret = SecretDigits::default();
        while !secret.push_digits_of(&random) {
            // More than 5 of 48 bytes skipped (one token in four has one; more than 5, about
            // one in 200): draw more.
            fill_random(&mut random)?;
        }
        text[SECRET_AT..CHECKED_LEN].copy_from_slice(secret.digits());
        Ok((Self(with_checksum(text)), selector))
    }
}

/// Random bytes drawn at a time for a secret's digits: 43 digits and room for 5 skipped bytes.
const RANDOM_BATCH: usize = 48;
/// Random bytes that give a digit are below this (4 × 62), so each digit is uniform.
const DIGIT_BOUND: u8 = 248;

/// The base62 character of the digit `byte % 62`, for `byte` below [`DIGIT_BOUND`] (others
/// give some character, which [`SecretDigits`] skips).
///
/// With no division and no table: three conditional subtractions of 62, then the offsets of
/// the alphabet's three runs (`0-9`, `A-Z`, `a-z`). Every step is a compare and a select, so
/// the compiler does a whole batch of bytes at once in vector registers.
#[inline(always)]
const fn base62_char(byte: u8) -> u8 {
    let mut digit = byte;
    if byte >= 62 {
        digit -= 62;
    }
    if byte >= 2 * 62 {
        digit -= 62;
    }
    if byte >= 3 * 62 {
        digit -= 62;
    }
    let mut char = digit.wrapping_add(b'0');
    if digit >= 10 {
        char = char.wrapping_add(b'A' - b'9' - 1);
    }
    if digit >= 36 {
        char = char.wrapping_add(b'a' - b'Z' - 1);
    }
    char
}

/// A secret's base62 digits as they are drawn from random bytes ([`Token::generate_with`]).
///
/// The characters of a whole batch are computed at once ([`base62_char`], in vector
/// registers), then the kept ones packed without a branch: each byte's character is written
/// at the running count, which moves on only if the byte is kept, so a skipped byte's
/// character is overwritten by the next kept one. The digits are exactly those of taking the
/// kept bytes one by one (a test checks it against that loop), which spent a division, a
/// table lookup and a branch on each byte. Measured with both in one binary, alternating:
/// a whole token 177-186 -> 140-152 ns (medians of six runs), logins 4-5 % faster (1 M into
/// a fresh engine, one and two threads, medians of 7).
struct SecretDigits {
    /// The digits so far, then scratch: writes past the last digit land in the final slot.
    chars: [u8; RANDOM_BATCH],
    /// How many digits are kept (it may pass [`SECRET_LEN`]; the first ones are the secret).
    kept: usize,
}

impl Default for SecretDigits {
    fn default() -> Self {
        Self {
            chars: [0; RANDOM_BATCH],
            kept: 0,
        }
    }
}

impl SecretDigits {
    /// Takes the digits of `random`'s kept bytes; whether the secret is complete.
    #[inline(always)]
    fn push_digits_of(&mut self, random: &[u8; RANDOM_BATCH]) -> bool {
        let chars = random.map(base62_char);
        for (&byte, &char) in random.iter().zip(&chars) {
            self.chars[self.kept.min(RANDOM_BATCH - 1)] = char;
            self.kept += usize::from(byte < DIGIT_BOUND);
        }
        self.kept >= SECRET_LEN
    }

    /// The secret's digits, once [`push_digits_of`](Self::push_digits_of) said they are all in.
    fn digits(&self) -> &[u8] {
        &self.chars[..SECRET_LEN]
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

/// Bytes of a session key as the durable store keeps it: the selector, then a 160-bit SHA-256
/// prefix (the in-memory table keeps the first 24 of them).
pub const KEY_LEN: usize = 28;

/// What the table keys a session by: the selector (8 bytes, little-endian) followed by the
/// first 20 bytes of the SHA-256 of the token's selector and secret characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenDigest(pub(crate) [u8; KEY_LEN]);

impl TokenDigest {
    /// The key of a token the caller already checked with [`is_well_formed`] and whose
    /// selector is `selector` (from [`selector_of`]).
    ///
    /// The 54 hashed characters plus SHA-256's padding fill exactly one 64-byte block, so this
    /// is a single compression (no streaming state, no buffering).
    #[inline]
    pub(crate) fn of_token(token: &str, selector: u64) -> Self {
        Self::of_state(selector, sha256::compress_one(&hashed_block(token)))
    }

    /// [`of_token`](Self::of_token) of two tokens at once, their compressions interleaved
    /// (see [`raw::sha256`](crate::raw::sha256)): for batches, whose tokens the core would
    /// otherwise hash one after the other.
    #[inline]
    pub(crate) fn of_token_pair(tokens: [&str; 2], selectors: [u64; 2]) -> [Self; 2] {
        let blocks = tokens.map(hashed_block);
        let [first, second] = sha256::compress_pair([&blocks[0], &blocks[1]]);
        [
            Self::of_state(selectors[0], first),
            Self::of_state(selectors[1], second),
        ]
    }

    /// The key: the selector, then the first words of the digest, big-endian.
    #[inline]
    fn of_state(selector: u64, state: [u32; 8]) -> Self {
        let mut key = [0_u8; KEY_LEN];
        key[..8].copy_from_slice(&selector.to_le_bytes());
        for (out, word) in key[8..].chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        Self(key)
    }

    /// The key of `token`, or `None` if it is malformed.
    #[inline]
    pub(crate) fn of_well_formed(token: &str) -> Option<Self> {
        let selector = selector_of(token)?;
        rest_is_well_formed(token).then(|| Self::of_token(token, selector))
    }

    /// The selector: picks the shard and the slot, and is the public handle.
    #[inline]
    pub(crate) fn handle(&self) -> Handle {
        let mut first = [0_u8; 8];
        first.copy_from_slice(&self.0[..8]);
        Handle(u64::from_le_bytes(first))
    }
}

/// The one SHA-256 block of a well-formed token: its 54 selector and secret characters, then
/// the padding (see [`sha256::token_block`]).
#[inline]
fn hashed_block(token: &str) -> [u8; 64] {
    const _: () = assert!(
        TOKEN_LEN == 64
            && SELECTOR_AT == sha256::TOKEN_HASHED_AT
            && SELECTOR_LEN + SECRET_LEN == sha256::TOKEN_HASHED_LEN
    );
    let bytes: &[u8; TOKEN_LEN] = token.as_bytes().try_into().expect("a well-formed token");
    sha256::token_block(bytes)
}

/// SHA-256 of secrets that are not session tokens (device ids, challenge secrets, client
/// secrets): what the engine keeps in their place.
pub(crate) fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not a credential, but there is no reason to print it either.
        write!(f, "TokenDigest({})", self.handle())
    }
}

/// Public identifier of a session, shown to admins and in events: `swh_` + 16 hex digits.
///
/// It is the token's selector (see [How it is fast](crate#how-it-is-fast)): it locates the session
/// but cannot be used to authenticate, since that takes the token's 256-bit secret.
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
#[inline]
pub fn is_well_formed(text: &str) -> bool {
    selector_of(text).is_some() && rest_is_well_formed(text)
}

/// The checks of [`is_well_formed`] after [`selector_of`] accepted `text` (length, prefix and
/// selector): the secret's alphabet and the checksum. Lets a validation, which decodes the
/// selector first to prefetch, not decode it twice.
#[inline(always)]
pub(crate) fn rest_is_well_formed(text: &str) -> bool {
    let Ok(bytes) = <&[u8; TOKEN_LEN]>::try_from(text.as_bytes()) else {
        return false;
    };
    // Branch-free over the fixed-width body, so the compiler can vectorize it; the base62
    // alphabet is exactly the ASCII letters and digits.
    let body_is_base62 = bytes[SECRET_AT..]
        .iter()
        .fold(true, |all, b| all & b.is_ascii_alphanumeric());
    if !body_is_base62 {
        return false;
    }
    let mut stated: u64 = 0;
    for &b in &bytes[CHECKED_LEN..] {
        stated = stated * 62 + u64::from(BASE62_VALUE[b as usize]);
    }
    stated == u64::from(crate::raw::crc::crc32_of_checked(bytes))
}

/// The key sessionward's table stores for `token` (its selector, then the first 160 bits of
/// the SHA-256 of its random characters), or `None` if the token is malformed.
///
/// Costs what a validation costs before its lookup: the shape and checksum check and one
/// SHA-256 block. For tools that key their own maps exactly as the engine does, such as the
/// benchmarks' baselines, which must do the identical work per validation.
///
/// # Examples
///
/// ```
/// assert_eq!(sessionward_core::token_key("swd_short"), None);
/// ```
pub fn token_key(token: &str) -> Option<[u8; KEY_LEN]> {
    TokenDigest::of_well_formed(token).map(|key| key.0)
}

/// The selector of a token-shaped `text` (right length and prefix, a valid nonzero selector),
/// without checking the rest: the first step of a validation, which lets it start loading the
/// session's slot before it checks and hashes the rest.
#[inline(always)]
pub(crate) fn selector_of(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != TOKEN_LEN || !bytes.starts_with(TOKEN_PREFIX.as_bytes()) {
        return None;
    }
    let digits = &bytes[SELECTOR_AT..SECRET_AT];
    let mut invalid = 0_u8;
    let mut high: u64 = 0;
    for &b in &digits[..5] {
        let digit = BASE62_VALUE[b as usize];
        invalid |= digit;
        high = high * 62 + u64::from(digit);
    }
    let mut low: u64 = 0;
    for &b in &digits[5..] {
        let digit = BASE62_VALUE[b as usize];
        invalid |= digit;
        low = low * 62 + u64::from(digit);
    }
    // Invalid digits are 0xFF, the only values with the top bit set.
    if invalid & 0x80 != 0 {
        return None;
    }
    let selector = u128::from(high) * u128::from(BASE62_POW6) + u128::from(low);
    u64::try_from(selector)
        .ok()
        .filter(|&selector| selector != 0)
}

/// Replaces every well-formed token in `text` with `swd_[REDACTED]`, whatever surrounds it.
///
/// For log pipelines that may see request headers by mistake. A token glued to more letters
/// or digits is redacted too: it is still a working credential to whoever reads the line,
/// and its CRC32 makes a false match (64 characters that pass it by chance) a one in four
/// billion event.
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
        match rest.get(at..at + TOKEN_LEN) {
            Some(token) if is_well_formed(token) => {
                out.push_str(&rest[..at]);
                out.push_str(REDACTED);
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

/// Replaces `swd_` followed by any run of letters, digits and underscores (a token, part of
/// one, or one glued to more text, including another token) with `swd_[REDACTED]`.
///
/// For echoing refused input in error messages, where [`redact_tokens`] is not enough: a
/// token cut short (by the caller, or by the echo's length limit) is no longer well-formed,
/// yet its first 63 characters are the whole credential (the last is a checksum anyone can
/// recompute). A false positive here only shortens an echo.
///
/// # Examples
///
/// ```
/// use sessionward_core::redact_token_like;
/// assert_eq!(redact_token_like("user swd_ab_c1, ok"), "user swd_[REDACTED], ok");
/// assert_eq!(redact_token_like("no prefix: abc1"), "no prefix: abc1");
/// ```
pub fn redact_token_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        let after = &rest[at + TOKEN_PREFIX.len()..];
        let run = after
            .bytes()
            .take_while(|&b| b == b'_' || BASE62_VALUE[usize::from(b)] != 0xFF)
            .count();
        out.push_str(&rest[..at]);
        out.push_str(if run > 0 { REDACTED } else { TOKEN_PREFIX });
        // `run` counts ASCII bytes only, so this is a character boundary.
        rest = &after[run..];
    }
    out.push_str(rest);
    out
}

/// What redaction leaves in place of a token.
const REDACTED: &str = "swd_[REDACTED]";

/// Writes the number whose big-endian 32-bit limbs are `limbs` as fixed-width big-endian
/// base62 into `out` (the number must fit; `limbs` is consumed as scratch).
///
/// Divides by 62^5 (which fits in 32 bits) per pass, so a 43-digit secret takes 9 passes over
/// the limbs instead of 43.
fn encode_base62(limbs: &mut [u32], out: &mut [u8]) {
    const CHUNK: u64 = 62 * 62 * 62 * 62 * 62;
    for digits in out.rchunks_mut(5) {
        let mut remainder: u64 = 0;
        for limb in limbs.iter_mut() {
            let value = (remainder << 32) | u64::from(*limb);
            *limb = (value / CHUNK) as u32;
            remainder = value % CHUNK;
        }
        for slot in digits.iter_mut().rev() {
            *slot = BASE62[(remainder % 62) as usize];
            remainder /= 62;
        }
    }
}

/// Writes `selector` as the token's 11 selector characters.
fn encode_selector(selector: u64, text: &mut [u8; TOKEN_LEN]) {
    encode_base62(
        &mut [(selector >> 32) as u32, selector as u32],
        &mut text[SELECTOR_AT..SECRET_AT],
    );
}

/// The token whose prefix, selector and secret characters are in `text`, with its checksum.
fn with_checksum(mut text: [u8; TOKEN_LEN]) -> String {
    let checksum = crate::raw::crc::crc32_of_checked(&text);
    encode_base62(&mut [checksum], &mut text[CHECKED_LEN..]);
    String::from_utf8(text.to_vec()).expect("the prefix and base62 digits are ASCII")
}

/// Formats a selector and a 256-bit secret, written in big-endian base62, as a token (tests
/// that need tokens of known values; [`Token::generate`] draws the digits directly).
#[cfg(test)]
fn encode(selector: u64, secret: &[u8; 32]) -> String {
    let mut text = [0_u8; TOKEN_LEN];
    text[..SELECTOR_AT].copy_from_slice(TOKEN_PREFIX.as_bytes());
    encode_selector(selector, &mut text);
    let mut limbs = [0_u32; 8];
    for (limb, chunk) in limbs.iter_mut().zip(secret.chunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    encode_base62(&mut limbs, &mut text[SECRET_AT..CHECKED_LEN]);
    with_checksum(text)
}

/// 64 random bits from this thread's ChaCha20 stream (see [`fill_random`]).
pub(crate) fn random_u64() -> Result<u64, Error> {
    let mut bytes = [0_u8; 8];
    fill_random(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

thread_local! {
    /// This thread's ChaCha20 stream and the process image ([`crate::raw::fork::epoch`]) it was
    /// seeded in.
    static RNG: RefCell<Option<(u64, ChaCha20Rng)>> = const { RefCell::new(None) };
}

/// Fills `out` from this thread's ChaCha20 stream, reseeding from the OS on first use and
/// in every forked child: a child forked after the parent issued tokens (gunicorn's preload)
/// must never replay the parent's stream.
fn fill_random(out: &mut [u8]) -> Result<(), Error> {
    let epoch = crate::raw::fork::epoch();
    RNG.with(|cell| {
        let mut state = cell.borrow_mut();
        match state.as_mut() {
            Some((seeded_in, rng)) if *seeded_in == epoch => rng.fill_bytes(out),
            _ => {
                let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|_| Error::Entropy)?;
                rng.fill_bytes(out);
                *state = Some((epoch, rng));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_char_is_the_digit_byte_mod_62() {
        for byte in 0..DIGIT_BOUND {
            assert_eq!(
                base62_char(byte),
                BASE62[usize::from(byte % 62)],
                "byte {byte}"
            );
        }
    }

    /// The secret's digits one kept byte at a time: what [`SecretDigits`] must equal.
    fn digits_one_by_one(batches: &[[u8; RANDOM_BATCH]]) -> Vec<u8> {
        batches
            .iter()
            .flatten()
            .filter(|&&byte| byte < DIGIT_BOUND)
            .map(|&byte| BASE62[usize::from(byte % 62)])
            .take(SECRET_LEN)
            .collect()
    }

    #[test]
    fn secret_digits_are_the_kept_bytes_in_order() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for round in 0..2000 {
            // Every few rounds, a third of the bytes skipped, so that a second and third
            // batch are needed.
            let skip_every = if round % 4 == 0 { 3 } else { usize::MAX };
            let mut batches = Vec::new();
            let mut secret = SecretDigits::default();
            loop {
                let mut batch = [0_u8; RANDOM_BATCH];
                rng.fill_bytes(&mut batch);
                for (index, byte) in batch.iter_mut().enumerate() {
                    if index % skip_every == 0 {
                        *byte |= DIGIT_BOUND;
                    }
                }
                batches.push(batch);
                if secret.push_digits_of(&batch) {
                    break;
                }
            }
            assert_eq!(
                secret.digits(),
                digits_one_by_one(&batches),
                "round {round}"
            );
            if skip_every == 3 {
                assert!(batches.len() > 1, "round {round}");
            }
        }
    }

    #[test]
    fn generated_tokens_are_well_formed_and_distinct() {
        let first = Token::generate().unwrap();
        let second = Token::generate().unwrap();
        assert_eq!(first.expose_secret().len(), TOKEN_LEN);
        assert!(is_well_formed(first.expose_secret()));
        assert_ne!(first, second);
        let mut chosen = None;
        let (token, selector) = Token::generate_with(random_u64().unwrap(), |drawn| {
            chosen = Some(drawn ^ 1);
            drawn ^ 1
        })
        .unwrap();
        assert_eq!(
            chosen,
            Some(selector),
            "the token carries the chosen selector"
        );
        assert_eq!(selector_of(token.expose_secret()), Some(selector));
        assert!(is_well_formed(token.expose_secret()));
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
        let token = encode(62, &one);
        assert_eq!(&token[SELECTOR_AT..SECRET_AT], "00000000010");
        assert_eq!(
            &token[SECRET_AT..CHECKED_LEN],
            &format!("{}1", "0".repeat(42))
        );
        assert_eq!(selector_of(&token), Some(62));
        let max = encode(u64::MAX, &[0xFF; 32]);
        assert!(is_well_formed(&max));
        assert_eq!(selector_of(&max), Some(u64::MAX));
    }

    #[test]
    fn selectors_round_trip() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for shift in 0..64 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            for selector in [state >> shift, (1_u64 << shift), state | 1] {
                let token = encode(selector.max(1), &[0xA5; 32]);
                assert_eq!(selector_of(&token), Some(selector.max(1)));
                assert!(is_well_formed(&token));
            }
        }
    }

    #[test]
    fn selectors_past_64_bits_or_zero_are_malformed() {
        // "LygHa16AHYG" is 2^64 in base62: one past the largest selector.
        let over = format!("swd_LygHa16AHYG{}", "0".repeat(SECRET_LEN));
        let checksum = crc32fast::hash(over.as_bytes());
        let mut digits = [0_u8; CHECKSUM_LEN];
        encode_base62(&mut [checksum], &mut digits);
        let over = format!("{over}{}", std::str::from_utf8(&digits).unwrap());
        assert_eq!(over.len(), TOKEN_LEN);
        assert_eq!(selector_of(&over), None);
        assert!(!is_well_formed(&over));
        let zero = encode(0, &[7; 32]);
        assert!(!is_well_formed(&zero));
    }

    #[test]
    fn the_key_is_the_selector_then_a_sha256_prefix_of_the_random_part() {
        let token = Token::generate().unwrap();
        let text = token.expose_secret();
        let selector = selector_of(text).unwrap();
        let key = TokenDigest::of_token(text, selector);
        assert_eq!(key.handle(), Handle(selector));
        let full = Sha256::digest(&text.as_bytes()[SELECTOR_AT..CHECKED_LEN]);
        assert_eq!(&key.0[8..], &full[..20], "one-block compression = SHA-256");
        assert_eq!(token_key(text), Some(key.0));
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
        let glued = format!("a{secret}x");
        assert_eq!(
            redact_tokens(&glued),
            "aswd_[REDACTED]x",
            "a token glued to more base62 is still a credential"
        );
        let mut broken = secret.to_owned();
        broken.replace_range(
            TOKEN_LEN - 1..,
            if secret.ends_with('0') { "1" } else { "0" },
        );
        assert_eq!(
            redact_tokens(&broken),
            broken,
            "a failing checksum: not a token"
        );
    }

    #[test]
    fn token_like_redaction_covers_cut_and_glued_tokens() {
        let token = Token::generate().unwrap();
        let secret = token.expose_secret();
        for text in [
            secret.to_owned(),
            format!("x{secret}y"),
            secret[..TOKEN_LEN - 1].to_owned(),
            format!("({})", &secret[..20]),
            format!("{secret}{secret}"),
            format!("{secret}_{}", &secret[TOKEN_PREFIX.len()..]),
        ] {
            let redacted = redact_token_like(&text);
            assert!(
                !redacted.contains(&secret[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + 8])
                    && !redacted.contains(&secret[TOKEN_LEN - 12..TOKEN_LEN - 4]),
                "{redacted}"
            );
            assert!(redacted.contains("swd_[REDACTED]"));
        }
        assert_eq!(redact_token_like("swd_ swd_"), "swd_ swd_");
        assert_eq!(redact_token_like("é swd_é"), "é swd_é");
        assert_eq!(redact_token_like("aswd_Z9-b"), "aswd_[REDACTED]-b");
    }

    #[test]
    fn secret_digits_are_uniform() {
        // `byte % 62` over all 256 byte values would make digits 0-7 a quarter more likely
        // than the rest; skipping bytes from 248 up keeps every digit equally likely.
        let mut counts = [0_u32; 62];
        for _ in 0..3000 {
            let token = Token::generate().unwrap();
            for &byte in &token.expose_secret().as_bytes()[SECRET_AT..CHECKED_LEN] {
                counts[usize::from(BASE62_VALUE[usize::from(byte)])] += 1;
            }
        }
        // 2081 expected per digit, standard deviation ~45: every digit within 20 % (over 9
        // deviations), and digits 0-7 as a group (~16 per mille of deviation) within 8 %.
        let expected = 3000.0 * SECRET_LEN as f64 / 62.0;
        for (digit, &count) in counts.iter().enumerate() {
            let ratio = f64::from(count) / expected;
            assert!(
                (0.8..1.2).contains(&ratio),
                "digit {digit}: {count} of {counts:?}"
            );
        }
        let first_eight = counts[..8].iter().map(|&c| f64::from(c)).sum::<f64>() / 8.0;
        assert!(
            (first_eight / expected - 1.0).abs() < 0.08,
            "digits 0-7 over-represented: {counts:?}"
        );
    }

    #[test]
    fn forked_child_reseeds() {
        // What a child sees: the stream it inherited, and a fork since it was seeded.
        let mut parent_stream = [0_u8; 40];
        fill_random(&mut parent_stream).unwrap();
        crate::raw::fork::simulate_fork();
        RNG.with(|cell| {
            let mut state = cell.borrow_mut();
            let (_, rng) = state.as_mut().unwrap();
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
