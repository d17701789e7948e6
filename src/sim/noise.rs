//! Deterministic, stateless randomness: every random quantity of the simulator is a hash of
//! (seed, what, where, when), so a value never depends on the order in which values are asked
//! for. Smooth fields are value noise: hashed lattice points, smoothly interpolated.

/// splitmix64 finaliser: a good 64-bit mixer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a string (FNV-1a, then mixed); stable across runs and platforms.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Hash of several words.
pub(crate) fn hash(words: &[u64]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3u64;
    for w in words {
        h = mix(h ^ w);
    }
    h
}

/// Uniform in [0, 1).
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in [-1, 1).
pub(crate) fn signed(h: u64) -> f64 {
    unit(h) * 2.0 - 1.0
}

/// Approximately standard normal (sum of four uniforms, scaled): cheap and bounded (|x| < 3.5).
pub(crate) fn gauss(h: u64) -> f64 {
    let a = unit(mix(h ^ 1));
    let b = unit(mix(h ^ 2));
    let c = unit(mix(h ^ 3));
    let d = unit(mix(h ^ 4));
    (a + b + c + d - 2.0) * (3.0f64).sqrt()
}

/// Smooth value noise in [-1, 1] along time `t` (seconds), lattice spacing `scale` seconds.
pub(crate) fn vnoise(key: u64, t: f64, scale: f64) -> f64 {
    let x = t / scale;
    let i = x.floor();
    let f = x - i;
    let i = i as i64;
    let a = signed(hash(&[key, i as u64]));
    let b = signed(hash(&[key, (i + 1) as u64]));
    let s = f * f * (3.0 - 2.0 * f);
    a + (b - a) * s
}

/// Three octaves of value noise with a base scale; roughly in [-1, 1], std about 0.4.
pub(crate) fn fractal(key: u64, t: f64, scale: f64) -> f64 {
    0.6 * vnoise(key, t, scale)
        + 0.3 * vnoise(mix(key ^ 0x51), t, scale / 4.0)
        + 0.1 * vnoise(mix(key ^ 0xA7), t, scale / 16.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_continuous_and_deterministic() {
        let mut prev = vnoise(7, 0.0, 3600.0);
        for k in 1..2000 {
            let t = k as f64 * 60.0;
            let v = vnoise(7, t, 3600.0);
            assert!((-1.0..=1.0).contains(&v));
            assert!((v - prev).abs() < 0.1, "jump at {t}: {prev} -> {v}");
            assert_eq!(v, vnoise(7, t, 3600.0));
            prev = v;
        }
        let g: Vec<f64> = (0..5000).map(|i| gauss(hash(&[i]))).collect();
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / g.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var - 1.0).abs() < 0.1, "{var}");
    }
}
