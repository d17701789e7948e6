//! CRC16 of HJ 212-2017 Appendix A (standards.md §6.2).
//!
//! Register starts at 0xFFFF; for every byte: `reg = (reg >> 8) ^ byte`, then eight times shift
//! right, XOR-ing 0xA001 when the dropped bit was 1. This is **not** CRC-16/MODBUS (which XORs the
//! byte into the unchanged register). Because `reg` is below 256 after the first step, the eight
//! shifts depend only on that byte, so one 256-entry table does the whole inner loop.

const fn make_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = i as u16;
        let mut k = 0;
        while k < 8 {
            let lsb = r & 1;
            r >>= 1;
            if lsb == 1 {
                r ^= 0xA001;
            }
            k += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
}

static TABLE: [u16; 256] = make_table();

/// `HK[k][x]` = H^(k+1)(x), where H(x) = high byte of `TABLE[x]`.
///
/// Only the register's high byte `s` carries from one byte to the next:
/// `s' = H(s ^ b)`, and the final CRC is `TABLE[s ^ last byte]`. H is linear over GF(2) (the
/// eight shift/XOR rounds have no constant term), so eight bytes fold into
/// `s' = H^8(s ^ b0) ^ H^7(b1) ^ … ^ H(b7)`: one dependent lookup per 8 bytes instead of 8.
const fn make_hk() -> [[u8; 256]; 8] {
    let t = make_table();
    let mut hk = [[0u8; 256]; 8];
    let mut x = 0;
    while x < 256 {
        let mut v = x as u8;
        let mut k = 0;
        while k < 8 {
            v = (t[v as usize] >> 8) as u8;
            hk[k][x] = v;
            k += 1;
        }
        x += 1;
    }
    hk
}

static HK: [[u8; 256]; 8] = make_hk();

/// CRC16 (HJ 212 variant) of the data segment.
pub fn crc16(data: &[u8]) -> u16 {
    let Some((&last, body)) = data.split_last() else {
        return 0xFFFF;
    };
    let mut s: u8 = 0xFF;
    let mut chunks = body.chunks_exact(8);
    for c in &mut chunks {
        s = HK[7][usize::from(s ^ c[0])]
            ^ HK[6][usize::from(c[1])]
            ^ HK[5][usize::from(c[2])]
            ^ HK[4][usize::from(c[3])]
            ^ HK[3][usize::from(c[4])]
            ^ HK[2][usize::from(c[5])]
            ^ HK[1][usize::from(c[6])]
            ^ HK[0][usize::from(c[7])];
    }
    for &b in chunks.remainder() {
        s = HK[0][usize::from(s ^ b)];
    }
    TABLE[usize::from(s ^ last)]
}

/// The bit-by-bit algorithm exactly as the standard writes it (reference for tests).
pub fn crc16_reference(data: &[u8]) -> u16 {
    let mut r: u16 = 0xFFFF;
    for &b in data {
        r = (r >> 8) ^ u16::from(b);
        for _ in 0..8 {
            let lsb = r & 1;
            r >>= 1;
            if lsb == 1 {
                r ^= 0xA001;
            }
        }
    }
    r
}

/// Parse 4 hex digits (either case).
pub fn parse_hex4(s: &[u8]) -> Option<u16> {
    if s.len() != 4 {
        return None;
    }
    let mut v: u16 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u16::from(d);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_example() {
        // HJ 212-2017 appendix example, CRC 1C80 (standards.md §6.2).
        let d = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";
        assert_eq!(crc16(d), 0x1C80);
        assert_eq!(crc16_reference(d), 0x1C80);
    }

    #[test]
    fn table_matches_reference() {
        let data: Vec<u8> = (0..=255u8)
            .chain(b"HJ212".iter().copied())
            .chain((0..=255u8).rev())
            .collect();
        for n in 0..data.len() {
            assert_eq!(crc16(&data[..n]), crc16_reference(&data[..n]));
        }
    }

    #[test]
    fn hex4() {
        assert_eq!(parse_hex4(b"c0c1"), Some(0xC0C1));
        assert_eq!(parse_hex4(b"C0C1"), Some(0xC0C1));
        assert_eq!(parse_hex4(b"C0G1"), None);
        assert_eq!(parse_hex4(b"C0C"), None);
    }
}
