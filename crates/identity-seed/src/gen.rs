//! The deterministic building blocks: a SplitMix64 generator, identifiers that are unique by
//! construction, and the encodings (hex, base64, timestamps) the rows are made of.
//!
//! Every value is a pure function of the seed, a per-purpose tag and an index, so a table can be
//! generated in any order and a child table can recompute its parent's identifiers and facts
//! instead of keeping millions of them in memory.

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finalizer. It is a bijection on `u64`, which is what makes the tokens below
/// unique by construction rather than merely unlikely to collide.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const MASK62: u64 = (1 << 62) - 1;

/// A bijection on the 62-bit integers: xor-shifts and odd multiplications, each kept within 62
/// bits. A version-4 UUID has 122 free bits; putting 62 of them through this bijection of the
/// row's index makes primary keys unique by construction, whatever the other 60 bits are.
fn mix62(mut x: u64) -> u64 {
    x &= MASK62;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & MASK62;
    x ^= x >> 29;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB) & MASK62;
    x ^ (x >> 32)
}

/// SplitMix64: tiny, fast, and good enough for test data; the crate needs no `rand`.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is fixed by `state`.
    pub(crate) fn new(state: u64) -> Rng {
        Rng(state)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-high: no modulo bias worth the name
    /// and no division.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of length `n`.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        // Below `n`, which is a usize: it fits back.
        #[allow(clippy::cast_possible_truncation)]
        let i = self.below(n as u64) as usize;
        i
    }

    /// An element of a non-empty slice.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A random version-4 UUID, for values that reference nothing in the seeded tables.
    pub(crate) fn uuid(&mut self) -> u128 {
        let hi = (self.next() & 0xFFFF_FFFF_FFFF_0FFF) | 0x4000;
        let lo = (self.next() >> 2) | (1 << 63);
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// A number in `lo..hi` (`lo` if the range is empty).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        // `hi - lo` is positive here, and what is below it fits an i64 again.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]
        let offset = self.below((hi - lo) as u64) as i64;
        lo + offset
    }
}

/// What a value is for; each purpose draws from its own stream, so adding a column to one
/// table never shifts the data of another.
#[derive(Clone, Copy)]
#[repr(u64)]
pub(crate) enum Tag {
    Org = 1,
    OrgId,
    User,
    UserExtra,
    UserId,
    Profile,
    ProfileId,
    Session,
    SessionId,
    SessionToken,
    RefreshToken,
    Mfa,
    MfaId,
    Challenge,
    ChallengeId,
    Verification,
    VerificationId,
    VerificationToken,
    Reset,
    ResetId,
    ResetToken,
    Activity,
    ActivityId,
    Preference,
    PreferenceId,
}

/// The seed, spread into one key per purpose.
#[derive(Clone, Copy)]
pub(crate) struct Keys {
    seed: u64,
}

impl Keys {
    pub(crate) fn new(seed: u64) -> Keys {
        Keys { seed }
    }

    fn key(self, tag: Tag) -> u64 {
        mix64(self.seed ^ mix64((tag as u64).wrapping_mul(GOLDEN)))
    }

    /// The random stream of one row (or one user's rows) of one purpose.
    pub(crate) fn rng(self, tag: Tag, index: u64) -> Rng {
        Rng::new(mix64(
            self.key(tag)
                .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03)),
        ))
    }

    /// A version-4 UUID, unique among all `index` values of one tag (see [`mix62`]).
    pub(crate) fn uuid(self, tag: Tag, index: u64) -> u128 {
        let key = self.key(tag);
        let unique = mix62(index.wrapping_add(key));
        let random = mix64(key ^ mix64(index.wrapping_add(GOLDEN)));
        // Version nibble 4 in time_hi_and_version; variant bits 10 at the top of the low half.
        let hi = (random & 0xFFFF_FFFF_FFFF_0FFF) | 0x4000;
        let lo = (1 << 63) | unique;
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// 64 hex digits that look like a SHA-256 digest. The first 16 are a bijection of `index`,
    /// so two tokens of one tag never collide; the rest come from `rng`.
    pub(crate) fn token(self, tag: Tag, index: u64, rng: &mut Rng, out: &mut Vec<u8>) {
        hex_u64(mix64(index.wrapping_add(self.key(tag))), out);
        for _ in 0..3 {
            hex_u64(rng.next(), out);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 16 lowercase hex digits.
pub(crate) fn hex_u64(v: u64, out: &mut Vec<u8>) {
    for shift in (0..16).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xF) as usize]);
    }
}

/// The canonical 8-4-4-4-12 text of a UUID.
pub(crate) fn uuid_text(u: u128, out: &mut Vec<u8>) {
    for (i, shift) in (0..32).rev().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        out.push(HEX[((u >> (shift * 4)) & 0xF) as usize]);
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `len` random bytes as unpadded standard base64, the encoding of PHC strings (argon2).
pub(crate) fn b64_random(rng: &mut Rng, len: usize, out: &mut Vec<u8>) {
    let mut bytes = [0u8; 64];
    let len = len.min(bytes.len());
    for chunk in bytes[..len].chunks_mut(8) {
        let word = rng.next().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    for group in bytes[..len].chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // 1 byte gives 2 characters, 2 give 3, 3 give 4; no padding.
        for k in 0..=group.len() {
            out.push(B64[((n >> (18 - 6 * k)) & 0x3F) as usize]);
        }
    }
}

/// Seconds since 1970-01-01 00:00:00 UTC of 2018-01-01, 2019-01-01 and 2025-01-01: the data's
/// calendar is fixed (not `now()`), or the same seed would not give the same rows.
pub(crate) const T2018: i64 = 1_514_764_800;
/// 2019-01-01 00:00:00 UTC.
pub(crate) const T2019: i64 = 1_546_300_800;
/// 2025-01-01 00:00:00 UTC, the "present" of the generated data.
pub(crate) const T2025: i64 = 1_735_689_600;
/// Seconds per day.
pub(crate) const DAY: i64 = 86_400;

/// `YYYY-MM-DD HH:MM:SS` (UTC): valid for `timestamp` now and for `timestamptz` after a later
/// revision converts the columns (with the session time zone set to UTC).
// Every cast is of a field of a date in years 0..=9999 (two digits, hours, minutes, seconds):
// non-negative and small.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn timestamp_text(secs: i64, out: &mut Vec<u8>) {
    let days = secs.div_euclid(DAY);
    let rem = secs.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let two = |v: u32, out: &mut Vec<u8>| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two((y / 100) as u32, out);
    two((y % 100) as u32, out);
    out.push(b'-');
    two(m, out);
    out.push(b'-');
    two(d, out);
    out.push(b' ');
    two((rem / 3600) as u32, out);
    out.push(b':');
    two((rem / 60 % 60) as u32, out);
    out.push(b':');
    two((rem % 60) as u32, out);
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian); years 0..=9999 only, which
/// is all this crate produces.
// Day and month are 1..=31 and 1..=12 by the algorithm.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> String {
        let mut out = Vec::new();
        timestamp_text(secs, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn timestamps_are_utc_calendar_text() {
        assert_eq!(ts(0), "1970-01-01 00:00:00");
        assert_eq!(ts(T2019), "2019-01-01 00:00:00");
        assert_eq!(ts(T2025 - 1), "2024-12-31 23:59:59");
        assert_eq!(ts(951_782_400 + 3723), "2000-02-29 01:02:03");
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let keys = Keys::new(7);
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let u = keys.uuid(Tag::UserId, i);
            let mut text = Vec::new();
            uuid_text(u, &mut text);
            assert_eq!(text[14], b'4');
            assert!(matches!(text[19], b'8' | b'9' | b'a' | b'b'));
            assert!(seen.insert(u));
        }
    }

    #[test]
    fn base64_lengths_match_argon2() {
        let mut rng = Rng::new(1);
        let mut out = Vec::new();
        b64_random(&mut rng, 16, &mut out);
        assert_eq!(out.len(), 22);
        out.clear();
        b64_random(&mut rng, 32, &mut out);
        assert_eq!(out.len(), 43);
    }
}
