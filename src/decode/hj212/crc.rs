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

/// CRC16 (HJ 212 variant) of the data segment.
pub fn crc16(data: &[u8]) -> u16 {
    let mut r: u16 = 0xFFFF;
    for &b in data {
        r = TABLE[((r >> 8) as u8 ^ b) as usize];
    }
    r
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
        let data: Vec<u8> = (0..=255u8).chain(b"HJ212".iter().copied()).collect();
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
