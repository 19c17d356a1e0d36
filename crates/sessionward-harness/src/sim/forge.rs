//! What attackers send: well-formed guesses and malformed or tampered tokens.
//!
//! The token format is public (`swd_`, an 11-character base62 selector below 2^64, 43 base62
//! characters, and a 6-character base62 CRC32 of what precedes it), so a guesser can produce
//! tokens that pass the shape check and reach the table lookup.

use super::rng::SimRng;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX: &str = "swd_";
const SELECTOR_LEN: usize = 11;
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;

/// CRC-32 (IEEE 802.3, reflected, as zlib and crc32fast compute it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn checksum(text: &str) -> String {
    let mut value = u64::from(crc32(text.as_bytes()));
    let mut digits = [0_u8; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// A random token of the right shape and checksum: it passes the shape check and must be
/// refused as unknown.
pub(crate) fn well_formed_guess(rng: &mut SimRng) -> String {
    let mut token = String::with_capacity(sessionward_core::TOKEN_LEN);
    token.push_str(PREFIX);
    let mut selector = rng.next_u64().max(1);
    let mut digits = [0_u8; SELECTOR_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(selector % 62) as usize];
        selector /= 62;
    }
    token.extend(digits.iter().map(|&b| char::from(b)));
    for _ in 0..SECRET_LEN {
        token.push(char::from(BASE62[rng.below(62) as usize]));
    }
    let sum = checksum(&token);
    token.push_str(&sum);
    token
}

/// A malformed token: tampered from `real` (one character changed: the CRC catches every
/// single-character change), or of the wrong shape. Must be refused as malformed.
pub(crate) fn malformed(rng: &mut SimRng, real: Option<&str>) -> String {
    match (rng.below(6), real) {
        (0 | 1, Some(real)) => {
            let mut bytes = real.as_bytes().to_vec();
            let at = PREFIX.len() + rng.below((bytes.len() - PREFIX.len()) as u64) as usize;
            let old = bytes[at];
            let mut new = BASE62[rng.below(62) as usize];
            if new == old {
                new = BASE62[(BASE62.iter().position(|&b| b == old).unwrap_or(0) + 1) % 62];
            }
            bytes[at] = new;
            String::from_utf8(bytes).unwrap_or_default()
        }
        (2, _) => {
            // Right length, wrong prefix.
            let guess = well_formed_guess(rng);
            format!("sw{}", &guess[2..]).replacen("swd_", "swx_", 1)
        }
        (3, _) => {
            // Truncated.
            let guess = well_formed_guess(rng);
            let keep = rng.below(guess.len() as u64) as usize;
            guess[..keep].to_owned()
        }
        (4, _) => {
            // Bytes that are not base62 at all, of a random length (sometimes a token's).
            let len = if rng.chance(0.5) {
                sessionward_core::TOKEN_LEN
            } else {
                rng.below(200) as usize
            };
            (0..len)
                .map(|_| char::from_u32(0x20 + rng.below(0x2000) as u32).unwrap_or('?'))
                .collect()
        }
        _ => {
            // Right shape, wrong checksum.
            let mut guess = well_formed_guess(rng);
            let last = guess.pop().unwrap_or('0');
            guess.push(if last == '0' { '1' } else { '0' });
            guess
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_are_well_formed_and_malformed_ones_are_not() {
        let mut rng = SimRng::new(1);
        for _ in 0..200 {
            let guess = well_formed_guess(&mut rng);
            assert!(sessionward_core::is_well_formed(&guess));
            let bad = malformed(&mut rng, Some(&guess));
            assert!(!sessionward_core::is_well_formed(&bad), "{bad:?}");
        }
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
