//! The crate's one decimal and rounding implementation: exact decimals, GB/T 8170 rounding,
//! full-value comparison, exact means, and the precision of stored values.
//!
//! Why decimals: HJ 633 formula (1) must give exact results at the breakpoints (PM2.5 = 75 µg/m³
//! is IAQI 100 under HJ 633-2012, not 101 through binary floating-point error); GB/T 8170-2008
//! "round half to even" (§3.3, 四舍六入五成双) must see the decimal digits the instrument reported
//! (0.35 mg/m³ → 0.4, although the nearest `f64` is 0.34999…); a limit check (GB/T 8170-2008
//! §4.3.3, full-value comparison 全数值比较法) must not be decided by binary noise (a mean of
//! 0.1 and 0.2 is 0.15, not 0.15000000000000002); and a unit conversion by a decimal factor must
//! give the decimal result (101.02 kPa × 10 = 1010.2 hPa, not 1010.1999999999999).
//!
//! So an `f64` input is taken as the **shortest decimal that round-trips** to it (Rust's
//! `Display`), and everything after that is integer arithmetic on `i128` ([`Dec`]). A result goes
//! back to `f64` as the nearest double of a decimal with at most [`MAX_SIG`] significant digits,
//! whose shortest round-trip text (what line protocol and JSON print) is that decimal again.
//!
//! Hand-written rather than a decimal crate: the crate needs a handful of operations (parse the
//! shortest `f64` text, multiply, add, divide by a count, round half-even at a place or to
//! significant digits, compare), each a few lines on `i128`; `rust_decimal` (28 digits) would do
//! the same with a dependency and conversions at every call site.
//!
//! Precision rules used by the rest of the crate (docs/schema.md, "Stored precision"):
//! - [`MAX_SIG`]: no value envmon computes is stored with more than 10 significant digits;
//! - [`CONVERSION_SIG`]: a unit conversion that is not by a decimal factor (ppb → µg/m³, °F → °C,
//!   km/h → m/s, rad → °) is rounded to 8 significant digits.

use std::cmp::Ordering;
use std::fmt;

/// Most significant digits of any value envmon computes and stores (means, derived indicator
/// values, converted readings): more digits than this are binary noise, not information. The
/// issue's bound ("never more than 10"); 10 digits is 4 more than the finest instrument
/// resolution in [`CONVERSION_SIG`]'s reasoning.
pub const MAX_SIG: u32 = 10;

/// Significant digits of a unit conversion whose factor is not a decimal (ppb/ppm → µg/m³ or
/// mg/m³ at the reference state, °F → °C, km/h → m/s, rad → °). Finer than any instrument's
/// resolution: the finest monitoring resolutions are about 6 significant digits (a gas analyser
/// reading 0.1 ppb on a 10 000 ppb range; a barometer 0.01 hPa at 1013 hPa; a data logger's
/// HJ 212 field, e.g. `a21026-Rtd=1234.567`, carries at most 7), so 8 digits keep at least one
/// digit more than the input ever had, and never more than [`MAX_SIG`].
pub const CONVERSION_SIG: u32 = 8;

/// A small text buffer on the stack for `f64` formatting (|v| ≤ 1e15 with up to 17 significant
/// digits and a fraction down to 1e-300 written out: at most 330 bytes).
struct StackText {
    buf: [u8; 340],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        StackText {
            buf: [0; 340],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A decimal number `mant / 10^scale`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    mant: i128,
    scale: u32,
}

/// Most decimal places kept from an input (more are rounded half-to-even; values that small do not
/// occur in monitoring data).
pub const MAX_SCALE: u32 = 18;

/// Largest magnitude accepted (keeps every product inside `i128`).
pub const MAX_ABS: f64 = 1e15;

fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// Number of decimal digits of `a` (0 for 0).
fn digit_count(a: u128) -> u32 {
    if a == 0 {
        0
    } else {
        a.ilog10() + 1
    }
}

/// `num / den` rounded half-to-even (GB/T 8170 §3.3), `den > 0`.
fn div_half_even(num: i128, den: i128) -> i128 {
    let neg = num < 0;
    let a = num.unsigned_abs();
    let d = den.unsigned_abs();
    let mut q = a / d;
    let r = a % d;
    match (2 * r).cmp(&d) {
        Ordering::Greater => q += 1,
        Ordering::Equal if q % 2 == 1 => q += 1,
        _ => {}
    }
    let q = q as i128;
    if neg {
        -q
    } else {
        q
    }
}

impl Dec {
    /// Zero.
    pub const ZERO: Dec = Dec { mant: 0, scale: 0 };

    /// An integer.
    pub fn from_int(i: i64) -> Dec {
        Dec {
            mant: i as i128,
            scale: 0,
        }
    }

    /// `mant / 10^scale` (for constants such as `Dec::new(27315, 2)` = 273.15).
    pub const fn new(mant: i64, scale: u32) -> Dec {
        Dec {
            mant: mant as i128,
            scale,
        }
    }

    /// The shortest decimal that round-trips to `v`; `None` if `v` is not finite or too large.
    pub fn from_f64(v: f64) -> Option<Dec> {
        if !v.is_finite() || v.abs() > MAX_ABS {
            return None;
        }
        if v.fract() == 0.0 {
            // Integral (|v| ≤ 1e15 < 2^53): exact without going through text.
            return Some(Dec {
                mant: v as i128,
                scale: 0,
            });
        }
        // Fast path, no text: the fewest decimals s such that m / 10^s (an IEEE division of two
        // exact values, so correctly rounded) gives back v. With |m| < 10^15 the decimals of that
        // scale are more than 4 ULP apart, so m is the only one that round-trips: the shortest
        // decimal, the same digits as Rust's `Display`.
        let mut p = 1.0f64;
        for scale in 0..=15u32 {
            let m = (v * p).round();
            if m.abs() >= 1e15 {
                break;
            }
            if m / p == v {
                return Some(Dec {
                    mant: m as i128,
                    scale,
                });
            }
            p *= 10.0;
        }
        // The shortest round-trip text, formatted on the stack (no allocation).
        let mut buf = StackText::default();
        fmt::Write::write_fmt(&mut buf, format_args!("{v}")).ok()?;
        Dec::parse(buf.as_str())
    }

    /// Parse a plain decimal string (`-12.345`, no exponent).
    pub fn parse(s: &str) -> Option<Dec> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || int_part.len() > 20
        {
            return None;
        }
        // Keep at most MAX_SCALE + 1 fraction digits, remember whether anything non-zero followed.
        let keep = frac_part.len().min(MAX_SCALE as usize + 1);
        let sticky = frac_part[keep..].bytes().any(|b| b != b'0');
        let mut mant: i128 = 0;
        for b in int_part.bytes().chain(frac_part[..keep].bytes()) {
            mant = mant.checked_mul(10)?.checked_add((b - b'0') as i128)?;
        }
        let mut d = Dec {
            mant,
            scale: keep as u32,
        };
        if d.scale > MAX_SCALE {
            // Round the extra digit half-to-even, with the sticky digits deciding exact halves.
            let last = d.mant % 10;
            let mut q = d.mant / 10;
            if last > 5 || (last == 5 && (sticky || q % 2 == 1)) {
                q += 1;
            }
            d = Dec {
                mant: q,
                scale: MAX_SCALE,
            };
        }
        if neg {
            d.mant = -d.mant;
        }
        Some(d)
    }

    /// Round to `digits` decimal places per GB/T 8170-2008 §3.3 (进舍规则): below 5 drop, above 5
    /// (or 5 followed by non-zero digits) carry, exactly 5 → make the kept last digit even
    /// ("四舍六入五成双"). Symmetric for negative numbers (§3.3.5).
    pub fn round_half_even(self, digits: u32) -> Dec {
        if self.scale <= digits {
            return self;
        }
        Dec {
            mant: div_half_even(self.mant, pow10(self.scale - digits)),
            scale: digits,
        }
    }

    /// Round to `sig` significant digits (GB/T 8170 §3.3, half-to-even); `sig ≥ 1`.
    /// Places left of the decimal point are rounded too (123456 to 3 digits = 123000).
    pub fn round_sig(self, sig: u32) -> Dec {
        let sig = sig.max(1);
        let n = digit_count(self.mant.unsigned_abs());
        if n <= sig {
            return self;
        }
        let drop = n - sig;
        if drop <= self.scale {
            return self.round_half_even(self.scale - drop);
        }
        // Round left of the point: drop all decimals and (drop − scale) integer places.
        let k = drop - self.scale;
        let q = div_half_even(self.mant, pow10(drop));
        Dec {
            mant: q * pow10(k),
            scale: 0,
        }
    }

    /// The same number with trailing fraction zeros removed (1.2300 → 1.23).
    pub fn normalized(self) -> Dec {
        let mut d = self;
        while d.scale > 0 && d.mant % 10 == 0 {
            d.mant /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Significant digits of the value written without trailing zeros (0.00120 → 2, 1010.2 → 5,
    /// 1000 → 1, 0 → 0).
    pub fn significant_digits(self) -> u32 {
        let mut a = self.mant.unsigned_abs();
        if a == 0 {
            return 0;
        }
        while a.is_multiple_of(10) {
            a /= 10;
        }
        digit_count(a)
    }

    /// Exact product; `None` on overflow (not reachable with monitoring values and unit factors).
    pub fn checked_mul(self, other: Dec) -> Option<Dec> {
        let a = self.normalized();
        let b = other.normalized();
        let d = Dec {
            mant: a.mant.checked_mul(b.mant)?,
            scale: a.scale + b.scale,
        };
        Some(if d.scale > MAX_SCALE {
            d.round_half_even(MAX_SCALE)
        } else {
            d
        })
    }

    /// Exact sum; `None` on overflow.
    pub fn checked_add(self, other: Dec) -> Option<Dec> {
        let s = self.scale.max(other.scale);
        let a = self.mant.checked_mul(pow10(s - self.scale))?;
        let b = other.mant.checked_mul(pow10(s - other.scale))?;
        Some(Dec {
            mant: a.checked_add(b)?,
            scale: s,
        })
    }

    /// `self / n` rounded half-to-even to `sig` significant digits; `None` for `n == 0` or on
    /// overflow.
    pub fn div_int_round_sig(self, n: u64, sig: u32) -> Option<Dec> {
        if n == 0 {
            return None;
        }
        if self.mant == 0 {
            return Some(Dec::ZERO);
        }
        let n = n as i128;
        // Estimate the quotient's magnitude, then compute with the decimals that give `sig`
        // digits; if the estimate was one too small the result has sig + 1 digits: once more.
        let est = (self.to_f64().abs() / n as f64).log10().floor() as i32;
        for e in [est, est + 1] {
            let dp = sig as i32 - 1 - e;
            // q = mant / (n · 10^scale) · 10^dp
            let shift = dp - self.scale as i32;
            let q = if shift >= 0 {
                div_half_even(self.mant.checked_mul(pow10(shift as u32))?, n)
            } else {
                div_half_even(self.mant, n.checked_mul(pow10((-shift) as u32))?)
            };
            if digit_count(q.unsigned_abs()) <= sig || e == est + 1 {
                let d = if dp >= 0 {
                    Dec {
                        mant: q,
                        scale: dp as u32,
                    }
                } else {
                    Dec {
                        mant: q.checked_mul(pow10((-dp) as u32))?,
                        scale: 0,
                    }
                };
                return Some(d.normalized());
            }
        }
        None
    }

    /// The value as `f64` (nearest).
    pub fn to_f64(self) -> f64 {
        // mant and 10^scale exact in f64 (< 2^53, ≤ 10^22): one correctly rounded division.
        if self.mant.unsigned_abs() < (1u128 << 53) && self.scale <= 22 {
            return self.mant as f64 / 10f64.powi(self.scale as i32);
        }
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// Mantissa and scale: the value is `mant / 10^scale`.
    pub fn parts(self) -> (i128, u32) {
        (self.mant, self.scale)
    }

    /// Compare with an integer.
    pub fn cmp_int(self, i: i64) -> Ordering {
        self.mant.cmp(&((i as i128) * pow10(self.scale)))
    }

    /// Compare with another decimal.
    pub fn cmp_dec(self, other: Dec) -> Ordering {
        let s = self.scale.max(other.scale);
        (self.mant * pow10(s - self.scale)).cmp(&(other.mant * pow10(s - other.scale)))
    }

    /// Whether the value is negative.
    pub fn is_negative(self) -> bool {
        self.mant < 0
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.mant < 0;
        let a = self.mant.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{}{a}", if neg { "-" } else { "" });
        }
        let div = 10u128.pow(self.scale);
        write!(
            f,
            "{}{}.{:0width$}",
            if neg { "-" } else { "" },
            a / div,
            a % div,
            width = self.scale as usize
        )
    }
}

/// `ceil(num / den)` for `den > 0`.
pub fn ceil_div(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    if num.rem_euclid(den) == 0 {
        q
    } else {
        q + 1
    }
}

// ---- f64 helpers: every rounding of the crate goes through these ----------------------------

/// `x` rounded to `digits` decimal places per GB/T 8170 (half-to-even on its shortest decimal).
/// Values that are not finite or beyond [`MAX_ABS`] are returned unchanged.
pub fn round_dp(x: f64, digits: u32) -> f64 {
    match Dec::from_f64(x) {
        Some(d) => d.round_half_even(digits).to_f64(),
        None => x,
    }
}

/// `x` rounded to `sig` significant digits per GB/T 8170 (half-to-even on its shortest decimal).
/// Values that are not finite or beyond [`MAX_ABS`] are returned unchanged.
pub fn round_sig(x: f64, sig: u32) -> f64 {
    match Dec::from_f64(x) {
        Some(d) => d.round_sig(sig).to_f64(),
        None => x,
    }
}

/// A computed value as envmon stores it: at most [`MAX_SIG`] significant digits.
pub fn stored(x: f64) -> f64 {
    round_sig(x, MAX_SIG)
}

/// Significant digits of `x`'s shortest decimal (`None` when not finite or beyond [`MAX_ABS`]).
pub fn significant_digits(x: f64) -> Option<u32> {
    Dec::from_f64(x).map(Dec::significant_digits)
}

/// Arithmetic mean computed exactly in decimal (the shortest decimal of each value), rounded to
/// [`MAX_SIG`] significant digits: the mean of 0.1 and 0.2 is 0.15. `None` for no values.
/// A value that is not finite makes the mean NaN, as the `f64` sum would.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut sum = Dec::ZERO;
    let mut fsum = 0.0;
    let mut n: u64 = 0;
    let mut exact = true;
    for v in values {
        n += 1;
        fsum += v;
        if exact {
            match Dec::from_f64(v).and_then(|d| sum.checked_add(d)) {
                Some(s) => sum = s,
                None => exact = false,
            }
        }
    }
    if n == 0 {
        return None;
    }
    if !fsum.is_finite() {
        return Some(fsum);
    }
    match exact.then(|| sum.div_int_round_sig(n, MAX_SIG)).flatten() {
        Some(d) => Some(d.to_f64()),
        // Beyond the exact range (|v| > 1e15): the f64 mean, still at MAX_SIG digits.
        None => Some(stored(fsum / n as f64)),
    }
}

/// Weighted arithmetic mean `Σ v·w / Σ w` (weights: minutes, counts), exact in decimal like
/// [`mean`], at most [`MAX_SIG`] significant digits. `None` when the weights sum to 0.
pub fn weighted_mean(values: impl IntoIterator<Item = (f64, u64)>) -> Option<f64> {
    let mut sum = Dec::ZERO;
    let (mut fsum, mut fw) = (0.0, 0.0);
    let mut w: u64 = 0;
    let mut exact = true;
    for (v, k) in values {
        w = w.saturating_add(k);
        fsum += v * k as f64;
        fw += k as f64;
        if exact {
            let k = i64::try_from(k).unwrap_or(i64::MAX);
            match Dec::from_f64(v).and_then(|d| sum.checked_add(d.checked_mul(Dec::from_int(k))?)) {
                Some(s) => sum = s,
                None => exact = false,
            }
        }
    }
    if w == 0 {
        return None;
    }
    if !fsum.is_finite() {
        return Some(fsum);
    }
    match exact.then(|| sum.div_int_round_sig(w, MAX_SIG)).flatten() {
        Some(d) => Some(d.to_f64()),
        None => Some(stored(fsum / fw)),
    }
}

/// `a − b` computed exactly in decimal, at most [`MAX_SIG`] significant digits
/// (0.25 − 0.05 = 0.2). `None` when either is not finite.
pub fn diff(a: f64, b: f64) -> Option<f64> {
    let d = Dec::from_f64(a)?.checked_add(Dec::from_f64(-b)?)?;
    Some(d.round_sig(MAX_SIG).to_f64())
}

/// `num / den` computed exactly in decimal and rounded to [`MAX_SIG`] significant digits
/// ((0.25 − 0.05) / 0.05 = 4, where `f64` gives 3.9999999999999996). `None` when `den` is 0 or
/// either is not finite.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    let n = Dec::from_f64(num)?;
    let d = Dec::from_f64(den)?.normalized();
    if d.mant == 0 {
        return None;
    }
    // num / den = (n.mant / 10^n.scale) · 10^d.scale / d.mant
    let shifted = if n.scale >= d.scale {
        Dec {
            mant: n.mant,
            scale: n.scale - d.scale,
        }
    } else {
        Dec {
            mant: n.mant.checked_mul(pow10(d.scale - n.scale))?,
            scale: 0,
        }
    };
    let q = shifted.div_int_round_sig(u64::try_from(d.mant.unsigned_abs()).ok()?, MAX_SIG)?;
    Some(if d.mant < 0 { -q.to_f64() } else { q.to_f64() })
}

/// GB/T 8170-2008 §4.3.3 full-value comparison (全数值比较法) of a value with a limit: the value
/// as computed (at most [`MAX_SIG`] significant digits, so binary noise cannot decide) against the
/// limit, both as decimals. `None` when either is not finite.
pub fn cmp_full(value: f64, limit: f64) -> Option<Ordering> {
    let v = Dec::from_f64(value)?.round_sig(MAX_SIG);
    let l = Dec::from_f64(limit)?;
    Some(v.cmp_dec(l))
}

/// The fewest decimal places (at least `min_dp`, at most `max_dp`) at which `value`, rounded per
/// GB/T 8170, is on the same side of every limit in `limits` as the full value (below, equal,
/// above): the digits a printed value needs so that a reader sees why it was judged as it was
/// (TLI 50.006 printed as 50.01, not 50.0, when 50 is a grade boundary).
pub fn decimals_to_show(value: f64, limits: &[f64], min_dp: u32, max_dp: u32) -> u32 {
    let Some(full) = Dec::from_f64(value).map(|d| d.round_sig(MAX_SIG)) else {
        return min_dp;
    };
    let lims: Vec<Dec> = limits.iter().filter_map(|l| Dec::from_f64(*l)).collect();
    (min_dp..=max_dp)
        .find(|&dp| {
            let r = full.round_half_even(dp);
            lims.iter().all(|l| r.cmp_dec(*l) == full.cmp_dec(*l))
        })
        .unwrap_or(max_dp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_decimal_and_rounding() {
        let d = Dec::from_f64(0.35).unwrap();
        assert_eq!(d.to_string(), "0.35");
        assert_eq!(d.round_half_even(1).to_string(), "0.4");
        assert_eq!(
            Dec::from_f64(0.25).unwrap().round_half_even(1).to_string(),
            "0.2"
        );
        assert_eq!(
            Dec::from_f64(60.5).unwrap().round_half_even(0).to_string(),
            "60"
        );
        assert_eq!(
            Dec::from_f64(61.5).unwrap().round_half_even(0).to_string(),
            "62"
        );
        assert_eq!(
            Dec::from_f64(60.51).unwrap().round_half_even(0).to_string(),
            "61"
        );
        assert_eq!(
            Dec::from_f64(-2.5).unwrap().round_half_even(0).to_string(),
            "-2"
        );
        assert!(Dec::from_f64(f64::NAN).is_none());
        assert!(Dec::from_f64(1e300).is_none());
        assert_eq!(Dec::from_f64(1e-7).unwrap().to_string(), "0.0000001");
        // The smallest positive double is written with 324 fraction digits: fits the buffer,
        // rounded to MAX_SCALE places (0).
        assert_eq!(
            Dec::from_f64(5e-324).unwrap().to_string(),
            "0.000000000000000000"
        );
        assert_eq!(ceil_div(-3, 2), -1);
    }

    #[test]
    fn fast_path_agrees_with_the_shortest_text() {
        // Deterministic sweep: short decimals, binary noise, tiny and large values.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 4 {
                0 => (x % 10_000_000) as f64 / 10f64.powi((x % 7) as i32),
                1 => f64::from_bits((x >> 12) | 0x3FF0_0000_0000_0000) * 1000.0,
                2 => (x % 1000) as f64 * 0.1 + 0.2,
                _ => ((x % 100_000) as f64).sqrt(),
            };
            let d = Dec::from_f64(v).unwrap();
            let text = Dec::parse(&format!("{v}")).unwrap();
            assert_eq!(d.normalized(), text.normalized(), "{v}");
            assert_eq!(d.to_f64(), v, "{v}");
        }
    }

    #[test]
    fn significant_digit_rounding() {
        let r = |x: f64, s| round_sig(x, s);
        assert_eq!(r(1.1448819871264675, 8), 1.144882);
        assert_eq!(r(123456.0, 3), 123000.0);
        assert_eq!(r(125500.0, 3), 126000.0);
        assert_eq!(r(124500.0, 3), 124000.0);
        assert_eq!(r(0.000123456, 2), 0.00012);
        assert_eq!(r(-9.99999999999, 10), -10.0);
        assert_eq!(r(0.0, 8), 0.0);
        assert_eq!(significant_digits(1010.2), Some(5));
        assert_eq!(significant_digits(0.00120), Some(2));
        assert_eq!(significant_digits(1000.0), Some(1));
        assert_eq!(round_dp(50.05, 1), 50.0);
        assert_eq!(round_dp(50.15, 1), 50.2);
        assert_eq!(round_dp(f64::INFINITY, 1), f64::INFINITY);
    }

    #[test]
    fn exact_products_sums_and_means() {
        let p = Dec::from_f64(101.02)
            .unwrap()
            .checked_mul(Dec::new(10, 0))
            .unwrap();
        assert_eq!(p.to_f64().to_string(), "1010.2");
        assert_eq!(101.02f64 * 10.0, 1010.1999999999999);
        let s = Dec::from_f64(250.0)
            .unwrap()
            .checked_add(Dec::new(-27315, 2))
            .unwrap();
        assert_eq!(s.to_string(), "-23.15");
        assert_eq!(mean([0.1, 0.2]), Some(0.15));
        assert_eq!(mean([74.9, 75.1]), Some(75.0));
        assert_eq!(mean([1.0, 2.0, 2.0]), Some(1.666666667));
        assert_eq!(mean([2.0, 2.0, 2.0]), Some(2.0));
        assert_eq!(mean([1e6, 2e6]), Some(1.5e6));
        assert_eq!(mean([0.0, 0.0]), Some(0.0));
        assert_eq!(mean([-1.0, -2.0]), Some(-1.5));
        assert_eq!(mean([2e12, 1.0]), Some(1.0000000000e12));
        assert_eq!(mean(std::iter::empty()), None);
        assert_eq!(weighted_mean([(0.1, 1), (0.2, 1)]), Some(0.15));
        assert_eq!(weighted_mean([(10.0, 45), (20.0, 15)]), Some(12.5));
        assert_eq!(weighted_mean([(10.0, 0)]), None);
        assert_eq!(ratio(0.25 - 0.05, 0.05), Some(4.0));
        assert_eq!(ratio(0.2, 0.05), Some(4.0));
        assert_eq!(diff(0.25, 0.05), Some(0.2));
        assert_eq!(diff(0.3, 0.1), Some(0.2));
        assert_eq!(ratio(1.0, 3.0), Some(0.3333333333));
        assert_eq!(ratio(1.0, -0.5), Some(-2.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert!(mean([1.0, f64::NAN]).unwrap().is_nan());
        // 9999999999.5 at 10 digits carries to 11 digits (half-to-even: 9999999999 is odd).
        assert_eq!(mean([9999999999.5]), Some(10000000000.0));
    }

    #[test]
    fn full_value_comparison_and_shown_digits() {
        assert_eq!(cmp_full(50.006, 50.0), Some(Ordering::Greater));
        assert_eq!(cmp_full(0.1 + 0.2, 0.3), Some(Ordering::Equal));
        assert_eq!(cmp_full(1.0, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_full(0.99999999, 1.0), Some(Ordering::Less));
        assert_eq!(cmp_full(f64::NAN, 1.0), None);
        let b = [30.0, 50.0, 60.0, 70.0];
        assert_eq!(decimals_to_show(54.918, &b, 1, 8), 1);
        assert_eq!(decimals_to_show(50.006, &b, 1, 8), 2);
        assert_eq!(decimals_to_show(50.0004, &b, 1, 8), 4);
        assert_eq!(decimals_to_show(50.0, &b, 1, 8), 1);
        assert_eq!(decimals_to_show(49.96, &b, 1, 8), 2);
    }
}
