//! Exact decimal numbers for the AQI arithmetic and GB/T 8170 rounding.
//!
//! HJ 633 formula (1) must give exact results at the breakpoints (PM2.5 = 75 µg/m³ is IAQI 100 under
//! HJ 633-2012, not 101 through binary floating-point error), and GB/T 8170 "round half to even"
//! (四舍六入五成双) must see the decimal digits the instrument reported (0.35 mg/m³ → 0.4, although
//! the nearest `f64` is 0.34999…). So an `f64` input is taken as the **shortest decimal that
//! round-trips** to it (Rust's `Display`), and everything after that is integer arithmetic.

use std::cmp::Ordering;
use std::fmt;

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

impl Dec {
    /// An integer.
    pub fn from_int(i: i64) -> Dec {
        Dec {
            mant: i as i128,
            scale: 0,
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
        Dec::parse(&format!("{v}"))
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
        let div = pow10(self.scale - digits);
        let neg = self.mant < 0;
        let a = self.mant.abs();
        let mut q = a / div;
        let r = a % div;
        match (2 * r).cmp(&div) {
            Ordering::Greater => q += 1,
            Ordering::Equal if q % 2 == 1 => q += 1,
            _ => {}
        }
        Dec {
            mant: if neg { -q } else { q },
            scale: digits,
        }
    }

    /// The value as `f64` (nearest).
    pub fn to_f64(self) -> f64 {
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
pub(crate) fn ceil_div(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    if num.rem_euclid(den) == 0 {
        q
    } else {
        q + 1
    }
}

/// The interpolation of HJ 633 formula (1) in exact arithmetic, rounded **up**:
/// `ceil((i_hi - i_lo) / (bp_hi - bp_lo) * (c - bp_lo) + i_lo)`.
pub(crate) fn interpolate_ceil(c: Dec, bp_lo: u32, bp_hi: u32, i_lo: u32, i_hi: u32) -> u32 {
    let (m, s) = c.parts();
    let p = pow10(s);
    let num = (i_hi as i128 - i_lo as i128) * (m - bp_lo as i128 * p);
    let den = (bp_hi as i128 - bp_lo as i128) * p;
    let v = i_lo as i128 + ceil_div(num, den);
    v.clamp(0, u32::MAX as i128) as u32
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
    }

    #[test]
    fn ceil_interpolation_exact() {
        // PM2.5 75 under HJ 633-2012: segment 35..75 -> 50..100.
        assert_eq!(
            interpolate_ceil(Dec::from_f64(75.0).unwrap(), 35, 75, 50, 100),
            100
        );
        assert_eq!(
            interpolate_ceil(Dec::from_f64(75.0001).unwrap(), 75, 115, 100, 150),
            101
        );
        assert_eq!(ceil_div(-3, 2), -1);
    }
}
